package io.distserve.engine.cpu;

import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.model.TensorStore;
import java.util.ArrayList;
import java.util.List;

/**
 * A deliberately naive decoder, written from the equations of the HF Llama/Qwen3 modeling code and not from the
 * backend: double precision, plain loops, one sequence, keys and values in contiguous per-layer lists, the whole
 * prompt recomputed on every call.
 */
final class NaiveReference {

    private final ModelConfig c;
    private final TensorStore store;

    /** K (after q/k norm and RoPE) and V of the last run, per layer, per position: [kvHeads * headDim]. */
    final List<List<double[]>> keys = new ArrayList<>();
    final List<List<double[]>> values = new ArrayList<>();

    NaiveReference(ModelConfig c, TensorStore store) {
        this.c = c;
        this.store = store;
    }

    private double[][] matrix(String name, int rows, int cols) {
        float[] f = store.readFloats(name, rows, cols);
        double[][] m = new double[rows][cols];
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < cols; k++) {
                m[r][k] = f[r * cols + k];
            }
        }
        return m;
    }

    private double[] vector(String name, int n) {
        float[] f = store.readFloats(name, n);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = f[i];
        }
        return v;
    }

    private static double[] times(double[][] w, double[] x) {
        double[] y = new double[w.length];
        for (int r = 0; r < w.length; r++) {
            double s = 0;
            for (int k = 0; k < x.length; k++) {
                s += w[r][k] * x[k];
            }
            y[r] = s;
        }
        return y;
    }

    private double[] rmsNorm(double[] x, double[] weight) {
        double ms = 0;
        for (double v : x) {
            ms += v * v;
        }
        ms /= x.length;
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = weight[i] * x[i] / Math.sqrt(ms + c.rmsNormEps());
        }
        return y;
    }

    /** x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1) and cos/sin repeated over both halves. */
    private double[] rope(double[] x, int pos) {
        int d = x.length;
        int half = d / 2;
        double[] rotated = new double[d];
        for (int i = 0; i < half; i++) {
            rotated[i] = -x[i + half];
            rotated[i + half] = x[i];
        }
        double[] y = new double[d];
        for (int i = 0; i < d; i++) {
            int f = i % half;
            double angle = pos / Math.pow(c.ropeTheta(), 2.0 * f / d);
            y[i] = x[i] * Math.cos(angle) + rotated[i] * Math.sin(angle);
        }
        return y;
    }

    private static double[] part(double[] v, int head, int d) {
        double[] p = new double[d];
        System.arraycopy(v, head * d, p, 0, d);
        return p;
    }

    /** Logits at every position of {@code tokens}, computed from scratch. */
    double[][] logitsAll(int[] tokens) {
        int h = c.hiddenSize();
        int d = c.headDim();
        double[][] embed = matrix("model.embed_tokens.weight", c.vocabSize(), h);
        double[][] head = c.tieWordEmbeddings() ? embed : matrix("lm_head.weight", c.vocabSize(), h);
        keys.clear();
        values.clear();
        double[][] xs = new double[tokens.length][];
        for (int p = 0; p < tokens.length; p++) {
            xs[p] = embed[tokens[p]].clone();
        }
        for (int l = 0; l < c.numLayers(); l++) {
            String pre = "model.layers." + l + ".";
            double[][] wq = matrix(pre + "self_attn.q_proj.weight", c.qDim(), h);
            double[][] wk = matrix(pre + "self_attn.k_proj.weight", c.kvDim(), h);
            double[][] wv = matrix(pre + "self_attn.v_proj.weight", c.kvDim(), h);
            double[][] wo = matrix(pre + "self_attn.o_proj.weight", h, c.qDim());
            double[][] wg = matrix(pre + "mlp.gate_proj.weight", c.intermediateSize(), h);
            double[][] wu = matrix(pre + "mlp.up_proj.weight", c.intermediateSize(), h);
            double[][] wd = matrix(pre + "mlp.down_proj.weight", h, c.intermediateSize());
            double[] n1 = vector(pre + "input_layernorm.weight", h);
            double[] n2 = vector(pre + "post_attention_layernorm.weight", h);
            double[] qn = c.qkNorm() ? vector(pre + "self_attn.q_norm.weight", d) : null;
            double[] kn = c.qkNorm() ? vector(pre + "self_attn.k_norm.weight", d) : null;
            List<double[]> ks = new ArrayList<>();
            List<double[]> vs = new ArrayList<>();
            keys.add(ks);
            values.add(vs);
            // keys and values of every position first (a causal mask makes later ones irrelevant)
            List<double[][]> qsPerPos = new ArrayList<>();
            for (int p = 0; p < tokens.length; p++) {
                double[] a = rmsNorm(xs[p], n1);
                double[] q = times(wq, a);
                double[] k = times(wk, a);
                double[] v = times(wv, a);
                double[][] qh = new double[c.numHeads()][];
                for (int hh = 0; hh < c.numHeads(); hh++) {
                    double[] one = part(q, hh, d);
                    qh[hh] = rope(qn != null ? rmsNorm(one, qn) : one, p);
                }
                double[] kAll = new double[c.kvDim()];
                for (int g = 0; g < c.numKvHeads(); g++) {
                    double[] one = part(k, g, d);
                    double[] r = rope(kn != null ? rmsNorm(one, kn) : one, p);
                    System.arraycopy(r, 0, kAll, g * d, d);
                }
                qsPerPos.add(qh);
                ks.add(kAll);
                vs.add(v);
            }
            double[][] next = new double[tokens.length][];
            for (int p = 0; p < tokens.length; p++) {
                double[] attn = new double[c.qDim()];
                for (int hh = 0; hh < c.numHeads(); hh++) {
                    int g = hh / (c.numHeads() / c.numKvHeads());
                    double[] q = qsPerPos.get(p)[hh];
                    double[] w = new double[p + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= p; j++) {
                        double s = 0;
                        for (int e = 0; e < d; e++) {
                            s += q[e] * ks.get(j)[g * d + e];
                        }
                        w[j] = s / Math.sqrt(d);
                        max = Math.max(max, w[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= p; j++) {
                        w[j] = Math.exp(w[j] - max);
                        sum += w[j];
                    }
                    for (int j = 0; j <= p; j++) {
                        for (int e = 0; e < d; e++) {
                            attn[hh * d + e] += w[j] / sum * vs.get(j)[g * d + e];
                        }
                    }
                }
                double[] x = xs[p].clone();
                double[] o = times(wo, attn);
                for (int i = 0; i < h; i++) {
                    x[i] += o[i];
                }
                double[] a = rmsNorm(x, n2);
                double[] gate = times(wg, a);
                double[] up = times(wu, a);
                double[] act = new double[gate.length];
                for (int i = 0; i < gate.length; i++) {
                    act[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                double[] down = times(wd, act);
                for (int i = 0; i < h; i++) {
                    x[i] += down[i];
                }
                next[p] = x;
            }
            xs = next;
        }
        double[] fn = vector("model.norm.weight", h);
        double[][] logits = new double[tokens.length][];
        for (int p = 0; p < tokens.length; p++) {
            logits[p] = times(head, rmsNorm(xs[p], fn));
        }
        return logits;
    }
}
