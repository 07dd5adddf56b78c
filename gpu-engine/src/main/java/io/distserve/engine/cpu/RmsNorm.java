package io.distserve.engine.cpu;

/**
 * Root-mean-square normalization, as Hugging Face's {@code LlamaRMSNorm} / {@code Qwen3RMSNorm}:
 * {@code y = weight * (x / sqrt(mean(x^2) + eps))}. The sum of squares is accumulated in double, in index order.
 */
final class RmsNorm {

    private RmsNorm() {
    }

    /** Normalizes {@code x[xo .. xo + n)} into {@code out[oo .. oo + n)} (may be the same place). */
    static void apply(float[] x, int xo, float[] weight, float[] out, int oo, int n, double eps) {
        double ss = 0;
        for (int i = 0; i < n; i++) {
            float v = x[xo + i];
            ss += v * v;
        }
        float inv = (float) (1.0 / Math.sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) {
            out[oo + i] = weight[i] * (x[xo + i] * inv);
        }
    }

    /** Normalizes each of {@code rows} rows of width {@code n}. */
    static void rows(float[] x, float[] weight, float[] out, int rows, int n, double eps) {
        for (int r = 0; r < rows; r++) {
            apply(x, r * n, weight, out, r * n, n, eps);
        }
    }
}
