package io.distserve.engine.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The one place that knows Hugging Face tensor names and shapes of Llama/Qwen3 decoders, for the loader, the
 * generator and every backend. Linear weights are stored {@code [out_features, in_features]}.
 */
public final class ModelTensors {

    public static final String EMBED_TOKENS = "model.embed_tokens.weight";
    public static final String FINAL_NORM = "model.norm.weight";
    public static final String LM_HEAD = "lm_head.weight";

    private ModelTensors() {
    }

    public static LayerTensorNames layer(int index) {
        return new LayerTensorNames(index);
    }

    public static String embedTokens() {
        return EMBED_TOKENS;
    }

    public static String finalNorm() {
        return FINAL_NORM;
    }

    public static String lmHead() {
        return LM_HEAD;
    }

    /**
     * The tensor that projects hidden states to logits: the embedding when tied (a tied checkpoint's own
     * {@code lm_head.weight}, if any, is ignored, as Hugging Face does), otherwise {@code lm_head.weight}.
     * Shape {@code [vocab, hidden]} either way.
     */
    public static String logitsWeight(ModelConfig config) {
        return config.tieWordEmbeddings() ? EMBED_TOKENS : LM_HEAD;
    }

    /** Every tensor the model reads, in Hugging Face order (embedding, layers, final norm, LM head if untied). */
    public static List<ExpectedTensor> expected(ModelConfig c) {
        long hidden = c.hiddenSize();
        long inter = c.intermediateSize();
        List<ExpectedTensor> tensors = new ArrayList<>();
        tensors.add(new ExpectedTensor(EMBED_TOKENS, c.vocabSize(), hidden));
        for (int i = 0; i < c.numLayers(); i++) {
            LayerTensorNames l = layer(i);
            tensors.add(new ExpectedTensor(l.inputLayernorm(), hidden));
            tensors.add(new ExpectedTensor(l.qProj(), c.qDim(), hidden));
            tensors.add(new ExpectedTensor(l.kProj(), c.kvDim(), hidden));
            tensors.add(new ExpectedTensor(l.vProj(), c.kvDim(), hidden));
            tensors.add(new ExpectedTensor(l.oProj(), hidden, c.qDim()));
            if (c.qkNorm()) {
                tensors.add(new ExpectedTensor(l.qNorm(), c.headDim()));
                tensors.add(new ExpectedTensor(l.kNorm(), c.headDim()));
            }
            tensors.add(new ExpectedTensor(l.postAttentionLayernorm(), hidden));
            tensors.add(new ExpectedTensor(l.gateProj(), inter, hidden));
            tensors.add(new ExpectedTensor(l.upProj(), inter, hidden));
            tensors.add(new ExpectedTensor(l.downProj(), hidden, inter));
        }
        tensors.add(new ExpectedTensor(FINAL_NORM, hidden));
        if (!c.tieWordEmbeddings()) {
            tensors.add(new ExpectedTensor(LM_HEAD, c.vocabSize(), hidden));
        }
        return Collections.unmodifiableList(tensors);
    }

    /** Parameters the model holds (a tied LM head counted once). */
    public static long parameterCount(ModelConfig config) {
        return expected(config).stream().mapToLong(ExpectedTensor::elementCount).sum();
    }
}
