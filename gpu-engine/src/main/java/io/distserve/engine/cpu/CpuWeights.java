package io.distserve.engine.cpu;

import io.distserve.engine.model.LayerTensorNames;
import io.distserve.engine.model.ModelTensors;

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
        float[] embedding = read(store, ModelTensors.embedTokens(), vocab, hidden);
        List<Layer> layers = new ArrayList<>(c.numLayers());
        for (int i = 0; i < c.numLayers(); i++) {
            LayerTensorNames names = ModelTensors.layer(i);
            layers.add(new Layer(
                    read(store, names.inputLayernorm(), hidden),
                    read(store, names.qProj(), qDim, hidden),
                    read(store, names.kProj(), kvDim, hidden),
                    read(store, names.vProj(), kvDim, hidden),
                    c.qkNorm() ? read(store, names.qNorm(), c.headDim()) : null,
                    c.qkNorm() ? read(store, names.kNorm(), c.headDim()) : null,
                    read(store, names.oProj(), hidden, qDim),
                    read(store, names.postAttentionLayernorm(), hidden),
                    read(store, names.gateProj(), inter, hidden),
                    read(store, names.upProj(), inter, hidden),
                    read(store, names.downProj(), hidden, inter)));
        }
        float[] finalNorm = read(store, ModelTensors.finalNorm(), hidden);
        float[] lmHead = c.tieWordEmbeddings() ? embedding : read(store, ModelTensors.lmHead(), vocab, hidden);
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
}
