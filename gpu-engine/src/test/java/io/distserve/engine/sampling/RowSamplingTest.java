package io.distserve.engine.sampling;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.List;
import java.util.Random;
import java.util.random.RandomGenerator;
import org.junit.jupiter.api.Test;

class RowSamplingTest {

    private static final int N = 200_000;

    /** Feeds (i + 0.5) / N, i = 0..N-1: sampling once per value gives the distribution to within 1/N a token. */
    private static final class Grid implements RandomGenerator {
        int i;

        @Override
        public long nextLong() {
            throw new UnsupportedOperationException("the sampler must draw with nextDouble only");
        }

        @Override
        public double nextDouble() {
            return (i++ + 0.5) / N;
        }
    }

    private static double[] rowSamplingDistribution(float[] logits, SamplingParams p) {
        double[] f = new double[logits.length];
        for (int i = 0; i < N; i++) {
            int id = RowSampling.sample(logits.clone(), (float) p.temperature(), p.topK(), (float) p.topP(),
                    (float) p.minP(), (i + 0.5) / N);
            f[id] += 1.0 / N;
        }
        return f;
    }

    private static double[] samplerDistribution(float[] logits, SamplingParams p) {
        double[] f = new double[logits.length];
        Grid g = new Grid();
        Sampler s = new Sampler();
        for (int i = 0; i < N; i++) {
            f[s.sample(logits.clone(), p, new int[0], 0, g)] += 1.0 / N;
        }
        return f;
    }

    private static SamplingParams params(double t, double topP, int topK, double minP) {
        return new SamplingParams(t, topP, topK, minP, 1, null, 1, List.of(), List.of(), false, true);
    }

    @Test
    void sameKeptSetAndProbabilitiesAsTheSampler() {
        Random rnd = new Random(42);
        float[] logits = new float[61];
        for (int j = 0; j < logits.length; j++) {
            logits[j] = (float) (1.5 * rnd.nextGaussian());
        }
        logits[7] = logits[40] = 4f;  // a tie at the top
        logits[3] = Float.NaN;
        double[][] grid = {{1, 1, 0, 0}, {0.7, 1, 0, 0}, {1, 0.8, 0, 0}, {1, 1, 10, 0}, {1, 0.5, 10, 0},
            {1.3, 0.9, 20, 0.05}, {1, 1, 0, 0.2}, {1, 1e-6, 0, 0}, {1, 1, 1, 0}, {1, 1, 0, 1}, {2, 0.95, 0, 0.01}};
        for (double[] g : grid) {
            SamplingParams p = params(g[0], g[1], (int) g[2], g[3]);
            double[] a = rowSamplingDistribution(logits, p);
            double[] b = samplerDistribution(logits, p);
            for (int j = 0; j < logits.length; j++) {
                assertThat(a[j] > 0).as("kept %d for %s", j, p).isEqualTo(b[j] > 0);
                assertThat(a[j]).as("p(%d) for %s", j, p).isCloseTo(b[j], within(3.0 / N));
            }
        }
    }

    @Test
    void tiesAtTheCutKeepTheLowestIds() {
        float[] logits = {1f, 3f, 3f, 0f, 3f, 3f};
        // top-k 2 among four equal best: ids 1 and 2, half each
        double[] a = rowSamplingDistribution(logits, params(1, 1, 2, 0));
        assertThat(a[1]).isCloseTo(0.5, within(2.0 / N));
        assertThat(a[2]).isCloseTo(0.5, within(2.0 / N));
        // top-p tiny: only the first of the tied best
        assertThat(RowSampling.sample(logits.clone(), 1f, 0, 1e-6f, 0f, 0.99)).isEqualTo(1);
        // min-p 1: only the best ones (all four ties), in id order
        assertThat(RowSampling.sample(logits.clone(), 1f, 0, 1f, 1f, 0.99)).isEqualTo(5);
        assertThat(RowSampling.sample(logits.clone(), 1f, 0, 1f, 1f, 0.0)).isEqualTo(1);
    }

    @Test
    void greedyRowsAreTheArgmax() {
        Random rnd = new Random(3);
        float[] logits = new float[1001];
        for (int j = 0; j < logits.length; j++) {
            logits[j] = (float) rnd.nextGaussian();
        }
        assertThat(RowSampling.sample(logits.clone(), 0f, 5, 0.5f, 0.1f, 0.7)).isEqualTo(Sampler.greedyToken(logits));
        float[] nan = {Float.NaN, Float.NaN};
        assertThat(RowSampling.sample(nan, 1f, 0, 1f, 0f, 0.5)).isEqualTo(-1);
        float[] negInf = {Float.NaN, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY};
        assertThat(RowSampling.sample(negInf, 1f, 0, 0.5f, 0f, 0.5)).isEqualTo(1);
    }
}
