package io.distserve.engine.cpu;

import io.distserve.engine.RopeAngles;

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
    private final RopeAngles angles;
    private float[] cos = new float[0];
    private float[] sin = new float[0];
    private int positions;

    Rope(int headDim, double theta, int maxPositions) {
        this.headDim = headDim;
        this.half = headDim / 2;
        this.angles = new RopeAngles(headDim, theta, maxPositions);
    }

    /** Makes the table cover positions {@code [0, needed)}. Not thread-safe: call between steps. */
    void ensure(int needed) {
        RopeAngles.Tables t = angles.grow(positions, needed);
        if (t != null) {
            cos = t.cos();
            sin = t.sin();
            positions = t.positions();
        }
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
