package io.distserve.engine;

import io.distserve.engine.sampling.RepetitionPenalties;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.sched.ScheduledChunk;
import java.util.List;

/**
 * The per-row arguments of {@link ComputeBackend#forwardSampled} for one engine step: every sampling setting,
 * the repetition penalty with the sequence's tokens included, goes to the backend.
 */
final class RowSamplingRoute {

    final float[] temperature;
    final int[] topK;
    final float[] topP;
    final float[] minP;
    final double[] uniform;
    final RepetitionPenalties penalties;

    private RowSamplingRoute(int rows) {
        temperature = new float[rows];
        topK = new int[rows];
        topP = new float[rows];
        minP = new float[rows];
        uniform = new double[rows];
        penalties = RepetitionPenalties.none(rows);
    }

    /**
     * One row per sampling chunk, in chunk order. A greedy row gets temperature 0 and draws nothing from its
     * generator (as {@link io.distserve.engine.sampling.Sampler#sample} draws nothing for it); any other row draws
     * exactly one {@code nextDouble()} from its sequence's generator, as the host Sampler does per token.
     */
    static RowSamplingRoute of(List<ScheduledChunk> chunks, int rows, int vocab) {
        RowSamplingRoute r = new RowSamplingRoute(rows);
        int i = 0;
        for (ScheduledChunk c : chunks) {
            if (!c.samples()) {
                continue;
            }
            SamplingParams p = c.sequence().params();
            if (p.repetitionPenalty() != 1.0) {
                r.penalties.penalty()[i] = (float) p.repetitionPenalty();
                r.penalties.history()[i] = c.sequence().tokenBuffer();
                r.penalties.length()[i] = c.sequence().length();
            }
            if (p.isGreedy()) {
                r.temperature[i] = 0f;
                r.topP[i] = 1f;
            } else {
                r.temperature[i] = (float) p.temperature();
                r.topK[i] = p.topK() > 0 && p.topK() < vocab ? p.topK() : 0;
                r.topP[i] = (float) p.topP();
                r.minP[i] = (float) p.minP();
                r.uniform[i] = c.sequence().rng().nextDouble();
            }
            i++;
        }
        if (i != rows) {
            throw new IllegalStateException(i + " sampling chunks, expected " + rows);
        }
        return r;
    }
}
