package io.distserve.engine.model;

import java.util.List;

/**
 * The architecture of a decoder-only transformer, as read from a Hugging Face {@code config.json}.
 *
 * @param modelType         {@code qwen3} or {@code llama}
 * @param hiddenSize        model width
 * @param intermediateSize  MLP width
 * @param numLayers         decoder layers
 * @param numHeads          query heads
 * @param numKvHeads        key/value heads (GQA when fewer than {@code numHeads})
 * @param headDim           width of one head (Qwen3 sets it explicitly; Llama derives hidden / heads)
 * @param vocabSize         rows of the embedding and of the LM head
 * @param maxPositions      {@code max_position_embeddings}: the context length
 * @param ropeTheta         RoPE base
 * @param rmsNormEps        RMSNorm epsilon
 * @param tieWordEmbeddings LM head shares the embedding matrix
 * @param qkNorm            per-head RMSNorm of q and k before RoPE (Qwen3)
 * @param bosTokenId        beginning-of-sequence id, or -1
 * @param eosTokenIds       end-of-sequence ids (config may give one or a list)
 * @param torchDtype        the checkpoint's declared dtype, e.g. {@code bfloat16}
 */
public record ModelConfig(
        String modelType,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int vocabSize,
        int maxPositions,
        double ropeTheta,
        double rmsNormEps,
        boolean tieWordEmbeddings,
        boolean qkNorm,
        int bosTokenId,
        List<Integer> eosTokenIds,
        String torchDtype) {

    public ModelConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
    }

    /** Width of the concatenated query projection. */
    public int qDim() {
        return numHeads * headDim;
    }

    /** Width of the concatenated key (or value) projection. */
    public int kvDim() {
        return numKvHeads * headDim;
    }
}
