package io.distserve.engine.cpu;

/**
 * Rotary position embedding in Hugging Face's "rotate_half" convention: dimension {@code i} of a head is rotated
 * with dimension {@code i + headDim/2} by the angle {@code pos * theta^(-2i/headDim)}.
 *
 * <p>Angles are computed in double and their cos/sin cast to float, in a table that grows (by doubling, up to
 * {@code maxPositions}) as longer sequences arrive. {@link #ensure} is called before a step; {@link #rotate} only
 * reads, so it is safe from several threads during the step.
 */
final class Rope {

    private final int headDim;
    private final int half;
    private final int maxPositions;
    private final double[] invFreq;
    private float[] cos = new float[0];
    private float[] sin = new float[0];
    private int positions;

    Rope(int headDim, double theta, int maxPositions) {
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("RoPE needs an even head dim, got " + headDim);
        }
        this.headDim = headDim;
        this.half = headDim / 2;
        this.maxPositions = maxPositions;
        this.invFreq = new double[half];
        for (int i = 0; i < half; i++) {
            invFreq[i] = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
        }
    }

    /** Makes the table cover positions {@code [0, needed)}. Not thread-safe: call between steps. */
    void ensure(int needed) {
        if (needed <= positions) {
            return;
        }
        int n = Math.min(maxPositions, Math.max(needed, Math.max(256, positions * 2)));
        float[] c = new float[n * half];
        float[] s = new float[n * half];
        for (int p = 0; p < n; p++) {
            for (int i = 0; i < half; i++) {
                double angle = p * invFreq[i];
                c[p * half + i] = (float) Math.cos(angle);
                s[p * half + i] = (float) Math.sin(angle);
            }
        }
        cos = c;
        sin = s;
        positions = n;
    }

    /** Rotates one head {@code v[o .. o + headDim)} in place for position {@code pos}. */
    void rotate(float[] v, int o, int pos) {
        int t = pos * half;
        for (int i = 0; i < half; i++) {
            float c = cos[t + i];
            float s = sin[t + i];
            float x0 = v[o + i];
            float x1 = v[o + i + half];
            v[o + i] = x0 * c - x1 * s;
            v[o + i + half] = x1 * c + x0 * s;
        }
    }

    int headDim() {
        return headDim;
    }
}
