package io.distserve.engine;

/**
 * Rotary position embedding's cos/sin tables, Hugging Face's "rotate_half" convention: frequency
 * {@code theta^(-2i/headDim)} for the pair (i, i + headDim/2), computed in double and stored as float, row-major
 * {@code [position][headDim/2]}. One place for every backend: the CPU rotates with them, the CUDA backend uploads
 * them.
 */
public final class RopeAngles {

    private final int half;
    private final int maxPositions;
    private final double[] invFreq;

    /** The tables for positions {@code [0, positions)}. */
    public record Tables(int positions, float[] cos, float[] sin) {
    }

    public RopeAngles(int headDim, double theta, int maxPositions) {
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("RoPE needs an even head dim, got " + headDim);
        }
        this.half = headDim / 2;
        this.maxPositions = maxPositions;
        this.invFreq = new double[half];
        for (int i = 0; i < half; i++) {
            invFreq[i] = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
        }
    }

    public int half() {
        return half;
    }

    /**
     * Tables covering at least {@code needed} positions when the current ones ({@code have} positions) do not:
     * grown geometrically (at least 256, doubling), never past the model's context; null when {@code have} is enough.
     */
    public Tables grow(int have, int needed) {
        if (needed <= have) {
            return null;
        }
        int n = Math.min(maxPositions, Math.max(needed, Math.max(256, have * 2)));
        float[] c = new float[n * half];
        float[] s = new float[n * half];
        for (int p = 0; p < n; p++) {
            for (int i = 0; i < half; i++) {
                double angle = p * invFreq[i];
                c[p * half + i] = (float) Math.cos(angle);
                s[p * half + i] = (float) Math.sin(angle);
            }
        }
        return new Tables(n, c, s);
    }
}
