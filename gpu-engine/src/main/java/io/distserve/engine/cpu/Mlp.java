package io.distserve.engine.cpu;

import io.distserve.engine.model.ModelConfig;

/** The gated SiLU MLP: {@code down(silu(gate(x)) * up(x))}. */
final class Mlp {

    private final ModelConfig config;
    private final MatMul mm;

    Mlp(ModelConfig config, MatMul mm) {
        this.config = config;
        this.mm = mm;
    }

    /** Per-step buffers, sized to the batch. */
    static final class Scratch {
        final float[] gate;
        final float[] up;

        Scratch(ModelConfig c, int tokens) {
            gate = new float[tokens * c.intermediateSize()];
            up = new float[tokens * c.intermediateSize()];
        }
    }

    void forward(CpuWeights.Layer w, float[] xn, int n, Scratch s, float[] out) {
        int hidden = config.hiddenSize();
        int inter = config.intermediateSize();
        mm.matmul(hidden, xn, n, new MatMul.Projection(w.gate(), inter, s.gate),
                new MatMul.Projection(w.up(), inter, s.up));
        float[] g = s.gate;
        float[] u = s.up;
        for (int i = 0; i < n * inter; i++) {
            g[i] = silu(g[i]) * u[i];
        }
        mm.matmul(w.down(), hidden, inter, g, n, out);
    }

    static float silu(float x) {
        return (float) (x / (1.0 + Math.exp(-x)));
    }
}
