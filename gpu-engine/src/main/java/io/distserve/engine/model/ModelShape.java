package io.distserve.engine.model;

import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Architectures the {@link CheckpointGenerator} can write, all Qwen3 (q/k norm, SiLU MLP, RoPE base 1e6, RMSNorm
 * epsilon 1e-6, bf16). The vocabulary is settled together with the tokenizer: see {@link #vocabSize}.
 */
public enum ModelShape {
    TINY("tiny", 128, 384, 4, 4, 2, 32, 0, 4096, true),
    QWEN3_0_6B("qwen3-0.6b", 1024, 3072, 28, 16, 8, 128, 151_936, 40_960, true),
    QWEN3_8B("qwen3-8b", 4096, 12_288, 36, 32, 8, 128, 151_936, 40_960, false);

    static final double ROPE_THETA = 1_000_000.0;
    static final double RMS_NORM_EPS = 1e-6;
    /** TINY's vocabulary is the tokenizer's, rounded up to a multiple of this (as real models pad theirs). */
    static final int TINY_VOCAB_MULTIPLE = 64;

    private final String cliName;
    private final int hiddenSize;
    private final int intermediateSize;
    private final int numLayers;
    private final int numHeads;
    private final int numKvHeads;
    private final int headDim;
    private final int presetVocabSize;
    private final int maxPositions;
    private final boolean tieWordEmbeddings;

    ModelShape(String cliName, int hiddenSize, int intermediateSize, int numLayers, int numHeads, int numKvHeads,
               int headDim, int presetVocabSize, int maxPositions, boolean tieWordEmbeddings) {
        this.cliName = cliName;
        this.hiddenSize = hiddenSize;
        this.intermediateSize = intermediateSize;
        this.numLayers = numLayers;
        this.numHeads = numHeads;
        this.numKvHeads = numKvHeads;
        this.headDim = headDim;
        this.presetVocabSize = presetVocabSize;
        this.maxPositions = maxPositions;
        this.tieWordEmbeddings = tieWordEmbeddings;
    }

    /** The name on the command line: {@code tiny}, {@code qwen3-0.6b}, {@code qwen3-8b}. */
    public String cliName() {
        return cliName;
    }

    /** Accepts the command-line name or the constant's name, in any case. */
    public static ModelShape fromName(String name) {
        for (ModelShape shape : values()) {
            if (shape.cliName.equalsIgnoreCase(name) || shape.name().equalsIgnoreCase(name)) {
                return shape;
            }
        }
        throw new IllegalArgumentException("unknown model shape '" + name + "' (known: " + cliNames() + ")");
    }

    public static String cliNames() {
        return Arrays.stream(values()).map(ModelShape::cliName).collect(Collectors.joining(", "));
    }

    /** Only TINY can do with the built-in byte-level tokenizer; a real shape deserves its real vocabulary. */
    public boolean requiresTokenizer() {
        return this != TINY;
    }

    public boolean tieWordEmbeddings() {
        return tieWordEmbeddings;
    }

    public int numLayers() {
        return numLayers;
    }

    /**
     * TINY: the tokenizer's id count rounded up to a multiple of 64, so the embedding stays small. Other shapes: the
     * preset vocabulary, or more if the tokenizer uses ids beyond it.
     */
    public int vocabSize(int tokenizerIdCount) {
        if (this == TINY) {
            return Math.floorDiv(tokenizerIdCount + TINY_VOCAB_MULTIPLE - 1, TINY_VOCAB_MULTIPLE)
                    * TINY_VOCAB_MULTIPLE;
        }
        return Math.max(presetVocabSize, tokenizerIdCount);
    }

    /** The configuration of this shape paired with a tokenizer, as {@link ModelConfigLoader} will read it back. */
    public ModelConfig config(TokenizerIds tokenizer) {
        return new ModelConfig(
                "qwen3",
                hiddenSize,
                intermediateSize,
                numLayers,
                numHeads,
                numKvHeads,
                headDim,
                vocabSize(tokenizer.idCount()),
                maxPositions,
                ROPE_THETA,
                RMS_NORM_EPS,
                tieWordEmbeddings,
                true,
                tokenizer.bosId(),
                tokenizer.generationEosIds(),
                "bfloat16");
    }
}
