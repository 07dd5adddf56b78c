package io.distserve.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelConfigLoaderTest {

    @TempDir
    Path dir;

    private static final String QWEN3 = """
            {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024,
             "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
             "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
             "rope_theta": 1000000, "rms_norm_eps": 1e-06, "tie_word_embeddings": true, "bos_token_id": 151643,
             "eos_token_id": 151645, "torch_dtype": "bfloat16", "rope_scaling": null, "attention_bias": false,
             "hidden_act": "silu"}
            """;

    private static final String LLAMA = """
            {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
             "num_attention_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
             "eos_token_id": [2, 7], "dtype": "float16"}
            """;

    private Path folderWith(String config) throws IOException {
        Files.writeString(dir.resolve("config.json"), config);
        return dir;
    }

    @Test
    void readsQwen3() throws IOException {
        ModelConfig c = ModelConfigLoader.load(folderWith(QWEN3));
        assertThat(c).isEqualTo(new ModelConfig("qwen3", 1024, 3072, 28, 16, 8, 128, 151936, 40960, 1e6, 1e-6, true,
                true, 151643, java.util.List.of(151645), "bfloat16"));
    }

    @Test
    void llamaDefaultsHeadDimKvHeadsThetaTyingAndBos() throws IOException {
        ModelConfig c = ModelConfigLoader.load(folderWith(LLAMA));
        assertThat(c.modelType()).isEqualTo("llama");
        assertThat(c.qkNorm()).isFalse();
        assertThat(c.headDim()).isEqualTo(64);
        assertThat(c.numKvHeads()).isEqualTo(32);
        assertThat(c.ropeTheta()).isEqualTo(10_000.0);
        assertThat(c.rmsNormEps()).isEqualTo(1e-6);
        assertThat(c.tieWordEmbeddings()).isFalse();
        assertThat(c.bosTokenId()).isEqualTo(-1);
        assertThat(c.eosTokenIds()).containsExactly(2, 7);
        assertThat(c.torchDtype()).isEqualTo("float16");
    }

    @Test
    void qwen3WithoutRopeThetaGetsItsOwnDefault() throws IOException {
        ModelConfig c = ModelConfigLoader.load(folderWith(QWEN3.replace("\"rope_theta\": 1000000,", "")));
        assertThat(c.ropeTheta()).isEqualTo(1e6);
    }

    @Test
    void ropeThetaInsideRopeParametersIsRead() throws IOException {
        ModelConfig c = ModelConfigLoader.load(folderWith(LLAMA.replace("\"dtype\"",
                "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000.0}, \"dtype\"")));
        assertThat(c.ropeTheta()).isEqualTo(500_000.0);
    }

    @Test
    void generationConfigAddsEosIds() throws IOException {
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": [151645, 151643]}");
        ModelConfig c = ModelConfigLoader.load(folderWith(QWEN3));
        assertThat(c.eosTokenIds()).containsExactly(151645, 151643);
    }

    @Test
    void unsupportedModelTypeIsNamed() throws IOException {
        Path folder = folderWith(LLAMA.replace("\"llama\"", "\"mistral\""));
        assertThatThrownBy(() -> ModelConfigLoader.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageEndingWith("config.json: model_type 'mistral' is not supported (supported: qwen3, llama)");
    }

    @Test
    void missingRequiredFieldIsNamed() throws IOException {
        Path folder = folderWith(QWEN3.replace("\"intermediate_size\": 3072,", ""));
        assertThatThrownBy(() -> ModelConfigLoader.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json: required field 'intermediate_size' is missing");
    }

    @Test
    void wronglyTypedFieldIsNamed() throws IOException {
        Path folder = folderWith(QWEN3.replace("\"hidden_size\": 1024", "\"hidden_size\": \"big\""));
        assertThatThrownBy(() -> ModelConfigLoader.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json: field 'hidden_size' must be a positive integer, got \"big\"");
    }

    @Test
    void badEosIdIsNamed() throws IOException {
        Path folder = folderWith(QWEN3.replace("\"eos_token_id\": 151645", "\"eos_token_id\": [1, \"x\"]"));
        assertThatThrownBy(() -> ModelConfigLoader.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json: field 'eos_token_id'");
    }

    @Test
    void headsNotDivisibleByKvHeadsAreRefused() throws IOException {
        Path folder = folderWith(QWEN3.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"));
        assertThatThrownBy(() -> ModelConfigLoader.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json: num_attention_heads 16 is not a multiple of num_key_value_heads 5");
    }

    @Test
    void featuresTheBackendsLackAreRefusedByName() throws IOException {
        String[][] cases = {
            {"\"attention_bias\": false", "\"attention_bias\": true", "'attention_bias'"},
            {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act 'gelu'"},
            {"\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "'rope_scaling'"},
        };
        for (String[] c : cases) {
            Path folder = folderWith(QWEN3.replace(c[0], c[1]));
            assertThatThrownBy(() -> ModelConfigLoader.load(folder)).as(c[1]).isInstanceOf(CheckpointException.class)
                    .hasMessageContaining("config.json: ").hasMessageContaining(c[2]);
        }
    }

    @Test
    void missingOrBrokenFilesAreNamed() throws IOException {
        assertThatThrownBy(() -> ModelConfigLoader.load(dir)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json: not found");
        Path folder = folderWith("{not json");
        assertThatThrownBy(() -> ModelConfigLoader.load(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("config.json: not valid JSON");
        Files.writeString(dir.resolve("config.json"), QWEN3);
        Files.writeString(dir.resolve("generation_config.json"), "[]");
        assertThatThrownBy(() -> ModelConfigLoader.load(dir)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("generation_config.json: not a JSON object");
    }
}
