package io.distserve.engine;

import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.sched.ScheduledChunk;
import java.util.List;

/**
 * The per-row arguments of {@link ComputeBackend#forwardSampled} for one engine step, and which sampling
 * parameters may go that way.
 */
final class RowSamplingRoute {

    final float[] temperature;
    final int[] topK;
    final float[] topP;
    final float[] minP;
    final double[] uniform;

    private RowSamplingRoute(int rows) {
        temperature = new float[rows];
        topK = new int[rows];
        topP = new float[rows];
        minP = new float[rows];
        uniform = new double[rows];
    }

    /** No repetition penalty (it needs the sequence's history): the rest is done by the backend. */
    static boolean deviceSamplable(SamplingParams p) {
        return p.repetitionPenalty() == 1.0;
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
