package io.distserve.engine.testing;

import io.distserve.engine.model.ModelConfig;
import java.util.List;
import java.util.Random;

/** Small model configs and seeded random weights under Hugging Face names, for tests and benchmarks. */
public final class TinyModels {

    private TinyModels() {
    }

    /** Qwen3-like: hidden 64, inter 160, 3 layers, 4 heads, 2 KV heads, head dim 16, vocab 300, tied, q/k norm. */
    public static ModelConfig qwen3() {
        return new ModelConfig("qwen3", 64, 160, 3, 4, 2, 16, 300, 256, 1_000_000.0, 1e-6, true, true, -1,
                List.of(299), "bfloat16");
    }

    /** Llama-like: hidden 48, inter 128, 2 layers, 6 heads, 2 KV heads, head dim 8 = 48/6, vocab 257, untied. */
    public static ModelConfig llama() {
        return new ModelConfig("llama", 48, 128, 2, 6, 2, 8, 257, 128, 10_000.0, 1e-5, false, false, 1,
                List.of(2), "bfloat16");
    }

    /** A config of the given shape (Qwen3 conventions: tied, q/k norm, theta 1e6). */
    public static ModelConfig qwen3Shaped(int hidden, int inter, int layers, int heads, int kvHeads, int headDim,
                                          int vocab) {
        return new ModelConfig("qwen3", hidden, inter, layers, heads, kvHeads, headDim, vocab, 40960, 1_000_000.0,
                1e-6, true, true, -1, List.of(vocab - 1), "bfloat16");
    }

    /**
     * Seeded random weights: projections N(0, 1/in) times a gain that keeps attention and MLP outputs sizeable,
     * norms 1 + N(0, 0.1^2), and an LM head (or tied embedding; untied embeddings are N(0, 1)) of
     * N(0, (3/sqrt(hidden))^2) so that logits spread over several units.
     */
    public static InMemoryTensorStore randomWeights(ModelConfig c, long seed, boolean bf16) {
        Random rnd = new Random(seed);
        InMemoryTensorStore s = new InMemoryTensorStore(bf16);
        int h = c.hiddenSize();
        int v = c.vocabSize();
        float embedScale = c.tieWordEmbeddings() ? (float) (3.0 / Math.sqrt(h)) : 1f;
        s.put("model.embed_tokens.weight", gaussian(rnd, v * h, embedScale), v, h);
        for (int i = 0; i < c.numLayers(); i++) {
            String p = "model.layers." + i + ".";
            s.put(p + "input_layernorm.weight", norm(rnd, h), h);
            s.put(p + "self_attn.q_proj.weight", gaussian(rnd, c.qDim() * h, 2f / (float) Math.sqrt(h)), c.qDim(), h);
            s.put(p + "self_attn.k_proj.weight", gaussian(rnd, c.kvDim() * h, 2f / (float) Math.sqrt(h)), c.kvDim(), h);
            s.put(p + "self_attn.v_proj.weight", gaussian(rnd, c.kvDim() * h, 1f / (float) Math.sqrt(h)), c.kvDim(), h);
            s.put(p + "self_attn.o_proj.weight", gaussian(rnd, h * c.qDim(), 1f / (float) Math.sqrt(c.qDim())), h,
                    c.qDim());
            if (c.qkNorm()) {
                s.put(p + "self_attn.q_norm.weight", norm(rnd, c.headDim()), c.headDim());
                s.put(p + "self_attn.k_norm.weight", norm(rnd, c.headDim()), c.headDim());
            }
            s.put(p + "post_attention_layernorm.weight", norm(rnd, h), h);
            int m = c.intermediateSize();
            s.put(p + "mlp.gate_proj.weight", gaussian(rnd, m * h, 1f / (float) Math.sqrt(h)), m, h);
            s.put(p + "mlp.up_proj.weight", gaussian(rnd, m * h, 1f / (float) Math.sqrt(h)), m, h);
            s.put(p + "mlp.down_proj.weight", gaussian(rnd, h * m, 1f / (float) Math.sqrt(m)), h, m);
        }
        s.put("model.norm.weight", norm(rnd, h), h);
        if (!c.tieWordEmbeddings()) {
            s.put("lm_head.weight", gaussian(rnd, v * h, 3f / (float) Math.sqrt(h)), v, h);
        }
        return s;
    }

    private static float[] gaussian(Random rnd, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextGaussian() * scale);
        }
        return a;
    }

    private static float[] norm(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (1.0 + 0.1 * rnd.nextGaussian());
        }
        return a;
    }

    /** Random token ids in [0, vocab). */
    public static int[] randomTokens(long seed, int n, int vocab) {
        Random rnd = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }
}
