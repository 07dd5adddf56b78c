package io.distserve.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.safetensors.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointGeneratorTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private GeneratedCheckpoint tiny(String folder, long seed, int threads) {
        return new CheckpointGenerator(ModelShape.TINY, seed, null).withThreads(threads).writeTo(dir.resolve(folder));
    }

    private static byte[] bytes(Path file) throws IOException {
        return Files.readAllBytes(file);
    }

    @Test
    void sameSeedGivesIdenticalFilesWhateverTheThreadCountAndAnotherSeedDoesNot() throws IOException {
        GeneratedCheckpoint one = tiny("one", 42, 1);
        GeneratedCheckpoint four = tiny("four", 42, 4);
        GeneratedCheckpoint other = tiny("other", 43, 4);
        assertThat(one.files()).isEqualTo(four.files());
        for (String file : one.files()) {
            assertThat(bytes(four.folder().resolve(file))).as(file).isEqualTo(bytes(one.folder().resolve(file)));
        }
        assertThat(bytes(other.folder().resolve("model.safetensors")))
                .isNotEqualTo(bytes(one.folder().resolve("model.safetensors")));
        assertThat(bytes(other.folder().resolve("config.json"))).isEqualTo(bytes(one.folder().resolve("config.json")));
    }

    @Test
    void tinyCheckpointLoadsWithTheExpectedConfigAndWeightScales() {
        GeneratedCheckpoint generated = tiny("tiny", 7, 2);
        BuiltInTokenizer tokenizer = new BuiltInTokenizer();
        assertThat(generated.files()).contains("config.json", "generation_config.json", "model.safetensors",
                "tokenizer.json", "tokenizer_config.json");
        try (Checkpoint checkpoint = Checkpoint.open(generated.folder())) {
            ModelConfig c = checkpoint.config();
            assertThat(c).isEqualTo(generated.config());
            assertThat(c.modelType()).isEqualTo("qwen3");
            assertThat(c.qkNorm()).isTrue();
            assertThat(List.of(c.hiddenSize(), c.intermediateSize(), c.numLayers(), c.numHeads(), c.numKvHeads(),
                    c.headDim(), c.maxPositions())).containsExactly(128, 384, 4, 4, 2, 32, 4096);
            assertThat(c.vocabSize()).isEqualTo(448).isGreaterThanOrEqualTo(tokenizer.size()).isEqualTo(
                    (tokenizer.size() + 63) / 64 * 64);
            assertThat(c.tieWordEmbeddings()).isTrue();
            assertThat(c.ropeTheta()).isEqualTo(1e6);
            assertThat(c.rmsNormEps()).isEqualTo(1e-6);
            assertThat(c.bosTokenId()).isEqualTo(tokenizer.endOfTextId());
            assertThat(c.eosTokenIds()).containsExactly(tokenizer.imEndId(), tokenizer.endOfTextId());
            assertThat(c.torchDtype()).isEqualTo("bfloat16");

            TensorStore t = checkpoint.tensors();
            assertThat(t.names()).hasSize(ModelTensors.expected(c).size()).doesNotContain(ModelTensors.LM_HEAD);
            assertThat(t.dtype(ModelTensors.EMBED_TOKENS)).isEqualTo(DType.BF16);
            float[] embed = t.readFloats(ModelTensors.EMBED_TOKENS, c.vocabSize(), c.hiddenSize());
            assertThat(std(embed)).isCloseTo(3.0 / Math.sqrt(128), org.assertj.core.data.Offset.offset(0.01));
            float[] up = t.readFloats(ModelTensors.layer(2).upProj(), c.intermediateSize(), c.hiddenSize());
            assertThat(std(up)).isCloseTo(1.0 / Math.sqrt(128), org.assertj.core.data.Offset.offset(0.003));
            float[] down = t.readFloats(ModelTensors.layer(2).downProj(), c.hiddenSize(), c.intermediateSize());
            assertThat(std(down)).isCloseTo(1.0 / Math.sqrt(384), org.assertj.core.data.Offset.offset(0.002));
            float[] norm = t.readFloats(ModelTensors.layer(0).qNorm(), c.headDim());
            assertThat(mean(norm)).isCloseTo(1.0, org.assertj.core.data.Offset.offset(0.06));
            assertThat(std(norm)).isBetween(0.05, 0.16);
        }
    }

    @Test
    void configJsonHasHuggingFaceQwen3Fields() throws IOException {
        GeneratedCheckpoint generated = tiny("fields", 1, 1);
        JsonNode config = JSON.readTree(generated.folder().resolve("config.json").toFile());
        List<String> fields = new java.util.ArrayList<>();
        config.fieldNames().forEachRemaining(fields::add);
        assertThat(fields).contains("architectures", "attention_bias", "attention_dropout", "bos_token_id",
                "eos_token_id", "head_dim", "hidden_act", "hidden_size", "initializer_range", "intermediate_size",
                "max_position_embeddings", "max_window_layers", "model_type", "num_attention_heads",
                "num_hidden_layers", "num_key_value_heads", "rms_norm_eps", "rope_scaling", "rope_theta",
                "sliding_window", "tie_word_embeddings", "torch_dtype", "use_cache", "use_sliding_window",
                "vocab_size");
        assertThat(config.get("architectures").get(0).asText()).isEqualTo("Qwen3ForCausalLM");
        assertThat(config.get("rope_scaling").isNull()).isTrue();
        assertThat(config.get("sliding_window").isNull()).isTrue();
        assertThat(config.get("use_sliding_window").asBoolean()).isFalse();
        assertThat(config.get("hidden_act").asText()).isEqualTo("silu");
        assertThat(config.get("torch_dtype").asText()).isEqualTo("bfloat16");
        JsonNode generation = JSON.readTree(generated.folder().resolve("generation_config.json").toFile());
        assertThat(generation.get("eos_token_id").size()).isEqualTo(2);
    }

    @Test
    void smallShardLimitProducesAnIndexedShardedFolderWithTheSameTensors() throws IOException {
        Path single = tiny("single", 5, 2).folder();
        GeneratedCheckpoint sharded = new CheckpointGenerator(ModelShape.TINY, 5, null).withThreads(2)
                .withMaxShardBytes(600_000).writeTo(dir.resolve("sharded"));
        assertThat(sharded.files()).contains("model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors",
                "model.safetensors.index.json").doesNotContain("model.safetensors");
        JsonNode index = JSON.readTree(sharded.folder().resolve("model.safetensors.index.json").toFile());
        long tensorBytes = ModelTensors.parameterCount(sharded.config()) * 2;
        assertThat(index.get("metadata").get("total_size").asLong()).isEqualTo(tensorBytes);
        assertThat(index.get("weight_map").size()).isEqualTo(ModelTensors.expected(sharded.config()).size());
        try (Checkpoint a = Checkpoint.open(single); Checkpoint b = Checkpoint.open(sharded.folder())) {
            for (ExpectedTensor t : ModelTensors.expected(a.config())) {
                assertThat(b.tensors().readFloats(t.name(), t.shape()))
                        .as(t.name()).containsExactly(a.tensors().readFloats(t.name(), t.shape()));
            }
        }
    }

    @Test
    void builtInTokenizerRoundTripsInDjl() throws IOException {
        Path folder = tiny("tok", 3, 1).folder();
        BuiltInTokenizer builtIn = new BuiltInTokenizer();
        String text = "Hello, wörld! 你好";
        try (HuggingFaceTokenizer tokenizer = HuggingFaceTokenizer.builder()
                .optTokenizerPath(folder.resolve("tokenizer.json")).optAddSpecialTokens(false).build()) {
            Encoding encoding = tokenizer.encode(text, false, false);
            long[] ids = encoding.getIds();
            assertThat(Arrays.stream(ids).allMatch(id -> id >= 0 && id < builtIn.size())).isTrue();
            // Merges make English shorter than its bytes.
            assertThat(ids.length).isLessThan(text.getBytes(java.nio.charset.StandardCharsets.UTF_8).length);
            assertThat(tokenizer.decode(ids, false)).isEqualTo(text);

            long[] chat = tokenizer.encode("<|im_start|>user\nhi<|im_end|>", false, false).getIds();
            assertThat(chat[0]).isEqualTo(builtIn.imStartId());
            assertThat(chat[chat.length - 1]).isEqualTo(builtIn.imEndId());
            assertThat(tokenizer.decode(chat, true)).isEqualTo("user\nhi");
        }
    }

    @Test
    void newInstanceLoadsTheBuiltInTokenizerAsIs() throws IOException {
        Path folder = tiny("djl", 3, 1).folder();
        String text = "Hello, wörld! 你好";
        try (HuggingFaceTokenizer tokenizer = HuggingFaceTokenizer.newInstance(folder.resolve("tokenizer.json"))) {
            long[] ids = tokenizer.encode(text, false, false).getIds();
            assertThat(tokenizer.decode(ids)).isEqualTo(text);
        }
    }

    @Test
    void realShapesRefuseToRunWithoutATokenizer() {
        assertThatThrownBy(() -> new CheckpointGenerator(ModelShape.QWEN3_8B, 1, null))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("--tokenizer");
    }

    @Test
    void refusesANonEmptyFolder() throws IOException {
        Files.writeString(dir.resolve("keep.txt"), "mine");
        assertThatThrownBy(() -> new CheckpointGenerator(ModelShape.TINY, 1, null).writeTo(dir))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("is not empty");
        assertThat(Files.readString(dir.resolve("keep.txt"))).isEqualTo("mine");
    }

    @Test
    void shapeNamesParse() {
        assertThat(ModelShape.fromName("qwen3-0.6b")).isEqualTo(ModelShape.QWEN3_0_6B);
        assertThat(ModelShape.fromName("QWEN3_8B")).isEqualTo(ModelShape.QWEN3_8B);
        assertThat(ModelShape.fromName("tiny")).isEqualTo(ModelShape.TINY);
        assertThatThrownBy(() -> ModelShape.fromName("gpt2")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("tiny, qwen3-0.6b, qwen3-8b");
    }

    @Test
    void qwen3TokenizerSetsVocabularyAndSpecialIds() {
        Path qwenTokenizer = sharedQwenTokenizer();
        ModelConfig eight = new CheckpointGenerator(ModelShape.QWEN3_8B, 1, qwenTokenizer).config();
        assertThat(eight.vocabSize()).isEqualTo(151_936);
        assertThat(eight.bosTokenId()).isEqualTo(151_643);
        assertThat(eight.eosTokenIds()).containsExactly(151_645, 151_643);
        assertThat(eight.tieWordEmbeddings()).isFalse();
        assertThat(List.of(eight.hiddenSize(), eight.intermediateSize(), eight.numLayers(), eight.numHeads(),
                eight.numKvHeads(), eight.headDim(), eight.maxPositions()))
                .containsExactly(4096, 12_288, 36, 32, 8, 128, 40_960);
        ModelConfig small = new CheckpointGenerator(ModelShape.QWEN3_0_6B, 1, qwenTokenizer).config();
        assertThat(small.tieWordEmbeddings()).isTrue();
        assertThat(List.of(small.hiddenSize(), small.intermediateSize(), small.numLayers(), small.numHeads(),
                small.numKvHeads(), small.headDim())).containsExactly(1024, 3072, 28, 16, 8, 128);
        // TINY pads the tokenizer's 151,669 ids to a multiple of 64.
        assertThat(new CheckpointGenerator(ModelShape.TINY, 1, qwenTokenizer).config().vocabSize())
                .isEqualTo(151_680);
    }

    @Test
    void tinyWithTheQwen3TokenizerCopiesItAndWritesQwenIds() throws IOException {
        Path qwenTokenizer = sharedQwenTokenizer();
        GeneratedCheckpoint generated = new CheckpointGenerator(ModelShape.TINY, 9, qwenTokenizer)
                .writeTo(dir.resolve("qwen-tiny"));
        assertThat(bytes(generated.folder().resolve("tokenizer.json")))
                .isEqualTo(bytes(qwenTokenizer.resolve("tokenizer.json")));
        JsonNode config = JSON.readTree(generated.folder().resolve("config.json").toFile());
        assertThat(config.get("bos_token_id").asInt()).isEqualTo(151_643);
        assertThat(config.get("eos_token_id").asInt()).isEqualTo(151_645);
        assertThat(config.get("vocab_size").asInt()).isEqualTo(151_680);
        JsonNode generation = JSON.readTree(generated.folder().resolve("generation_config.json").toFile());
        assertThat(generation.get("eos_token_id").toString()).isEqualTo("[151645,151643]");
        assertThat(generation.get("pad_token_id").asInt()).isEqualTo(151_643);
    }

    private static Path sharedQwenTokenizer() {
        String shared = System.getProperty("distserve.shared.dir");
        Path tokenizer = shared == null ? null : Path.of(shared, "models", "qwen3-tokenizer");
        Assumptions.assumeTrue(tokenizer != null && Files.exists(tokenizer.resolve("tokenizer.json")),
                "shared Qwen3 tokenizer not available");
        return tokenizer;
    }

    private static double mean(float[] v) {
        double s = 0;
        for (float x : v) {
            s += x;
        }
        return s / v.length;
    }

    private static double std(float[] v) {
        double m = mean(v);
        double s = 0;
        for (float x : v) {
            s += (x - m) * (x - m);
        }
        return Math.sqrt(s / v.length);
    }

    @Test
    void chunkSeedsDifferAcrossSeedsNamesAndChunks() {
        long base = CheckpointGenerator.chunkSeed(1, "a", 0);
        assertThat(Arrays.asList(CheckpointGenerator.chunkSeed(2, "a", 0), CheckpointGenerator.chunkSeed(1, "b", 0),
                CheckpointGenerator.chunkSeed(1, "a", 1))).doesNotContain(base).doesNotHaveDuplicates();
        assertThat(CheckpointGenerator.chunkSeed(1, "a", 0)).isEqualTo(base);
    }
}
