package io.distserve.engine.cpu;

import io.distserve.engine.model.CheckpointException;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.model.TensorStore;
import java.util.ArrayList;
import java.util.List;

/**
 * The model's weights as float32 arrays, row-major in Hugging Face's shapes ({@code [out, in]} for projections),
 * read through {@link TensorStore#readFloats} which checks every shape (bf16/f16 become f32 exactly).
 *
 * @param embedding   {@code [vocab, hidden]}
 * @param layers      one per decoder layer
 * @param finalNorm   {@code [hidden]}
 * @param lmHead      {@code [vocab, hidden]}; the same array as {@code embedding} when the embeddings are tied
 */
public record CpuWeights(float[] embedding, List<Layer> layers, float[] finalNorm, float[] lmHead) {

    /**
     * One decoder layer.
     *
     * @param inputNorm         {@code [hidden]}
     * @param wq                {@code [heads * headDim, hidden]}
     * @param wk                {@code [kvHeads * headDim, hidden]}
     * @param wv                {@code [kvHeads * headDim, hidden]}
     * @param qNorm             {@code [headDim]}, or null without q/k norm
     * @param kNorm             {@code [headDim]}, or null without q/k norm
     * @param wo                {@code [hidden, heads * headDim]}
     * @param postAttentionNorm {@code [hidden]}
     * @param gate              {@code [inter, hidden]}
     * @param up                {@code [inter, hidden]}
     * @param down              {@code [hidden, inter]}
     */
    public record Layer(float[] inputNorm, float[] wq, float[] wk, float[] wv, float[] qNorm, float[] kNorm,
                        float[] wo, float[] postAttentionNorm, float[] gate, float[] up, float[] down) {
    }

    public CpuWeights {
        layers = List.copyOf(layers);
    }

    /** Reads every tensor the forward pass needs; a missing or misshapen one is a {@link CheckpointException}. */
    public static CpuWeights load(ModelConfig c, TensorStore store) {
        long hidden = c.hiddenSize();
        long inter = c.intermediateSize();
        long vocab = c.vocabSize();
        long qDim = c.qDim();
        long kvDim = c.kvDim();
        float[] embedding = read(store, Names.embedTokens(), vocab, hidden);
        List<Layer> layers = new ArrayList<>(c.numLayers());
        for (int i = 0; i < c.numLayers(); i++) {
            layers.add(new Layer(
                    read(store, Names.inputNorm(i), hidden),
                    read(store, Names.qProj(i), qDim, hidden),
                    read(store, Names.kProj(i), kvDim, hidden),
                    read(store, Names.vProj(i), kvDim, hidden),
                    c.qkNorm() ? read(store, Names.qNorm(i), c.headDim()) : null,
                    c.qkNorm() ? read(store, Names.kNorm(i), c.headDim()) : null,
                    read(store, Names.oProj(i), hidden, qDim),
                    read(store, Names.postAttentionNorm(i), hidden),
                    read(store, Names.gateProj(i), inter, hidden),
                    read(store, Names.upProj(i), inter, hidden),
                    read(store, Names.downProj(i), hidden, inter)));
        }
        float[] finalNorm = read(store, Names.finalNorm(), hidden);
        float[] lmHead = c.tieWordEmbeddings() ? embedding : read(store, Names.lmHead(), vocab, hidden);
        return new CpuWeights(embedding, layers, finalNorm, lmHead);
    }

    private static float[] read(TensorStore store, String name, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new CheckpointException("tensor " + name + " has " + n + " elements: too large for the CPU backend");
        }
        float[] data = store.readFloats(name, shape);
        if (data.length != n) {
            throw new CheckpointException("tensor " + name + ": expected " + n + " floats, the store gave "
                    + data.length);
        }
        return data;
    }

    /**
     * The Hugging Face tensor names, in this one place (to be replaced by the shared name helper of package
     * {@code model} when it exists).
     */
    private static final class Names {
        private Names() {
        }

        static String embedTokens() {
            return "model.embed_tokens.weight";
        }

        static String finalNorm() {
            return "model.norm.weight";
        }

        static String lmHead() {
            return "lm_head.weight";
        }

        private static String layer(int i, String rest) {
            return "model.layers." + i + "." + rest;
        }

        static String inputNorm(int i) {
            return layer(i, "input_layernorm.weight");
        }

        static String qProj(int i) {
            return layer(i, "self_attn.q_proj.weight");
        }

        static String kProj(int i) {
            return layer(i, "self_attn.k_proj.weight");
        }

        static String vProj(int i) {
            return layer(i, "self_attn.v_proj.weight");
        }

        static String oProj(int i) {
            return layer(i, "self_attn.o_proj.weight");
        }

        static String qNorm(int i) {
            return layer(i, "self_attn.q_norm.weight");
        }

        static String kNorm(int i) {
            return layer(i, "self_attn.k_norm.weight");
        }

        static String postAttentionNorm(int i) {
            return layer(i, "post_attention_layernorm.weight");
        }

        static String gateProj(int i) {
            return layer(i, "mlp.gate_proj.weight");
        }

        static String upProj(int i) {
            return layer(i, "mlp.up_proj.weight");
        }

        static String downProj(int i) {
            return layer(i, "mlp.down_proj.weight");
        }
    }
}
