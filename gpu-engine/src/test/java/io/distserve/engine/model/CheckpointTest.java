package io.distserve.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.safetensors.DType;
import io.distserve.engine.safetensors.SafetensorsWriter;
import io.distserve.engine.safetensors.TensorSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {

    @TempDir
    Path dir;

    private static final String TIED_LLAMA = """
            {"model_type": "llama", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10, "max_position_embeddings": 64,
             "tie_word_embeddings": true, "eos_token_id": 2}
            """;

    /** Every expected tensor as zeros, plus {@code extra}; one tensor can be given another shape. */
    private Path checkpoint(String config, List<TensorSpec> extra, String reshaped, long... newShape)
            throws IOException {
        Files.writeString(dir.resolve("config.json"), config);
        List<TensorSpec> specs = new ArrayList<>();
        for (ExpectedTensor t : ModelTensors.expected(ModelConfigLoader.load(dir))) {
            specs.add(new TensorSpec(t.name(), DType.BF16, t.name().equals(reshaped) ? newShape : t.shape()));
        }
        specs.addAll(extra);
        try (SafetensorsWriter w = SafetensorsWriter.create(dir.resolve("model.safetensors"), specs, Map.of())) {
            for (TensorSpec s : specs) {
                w.writeFloats(s.name(), new float[(int) s.elementCount()]);
            }
        }
        return dir;
    }

    @Test
    void tiedCheckpointWithItsOwnLmHeadOpensAndUsesTheEmbedding() throws IOException {
        Path folder = checkpoint(TIED_LLAMA, List.of(new TensorSpec("lm_head.weight", DType.BF16, new long[] {10, 16})),
                null);
        try (Checkpoint c = Checkpoint.open(folder)) {
            assertThat(c.config().headDim()).isEqualTo(4);
            assertThat(c.logitsWeight()).isEqualTo("model.embed_tokens.weight");
            assertThat(c.tensors().contains("lm_head.weight")).isTrue();
        }
    }

    @Test
    void wrongShapeFailsAtOpenNamingFileAndTensor() throws IOException {
        Path folder = checkpoint(TIED_LLAMA, List.of(), "model.layers.1.mlp.up_proj.weight", 32, 8);
        assertThatThrownBy(() -> Checkpoint.open(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageStartingWith("model.safetensors: tensor model.layers.1.mlp.up_proj.weight has shape [32, 8],"
                        + " expected [32, 16]");
    }

    @Test
    void missingTensorFailsAtOpenNamingTensorAndFolder() throws IOException {
        Path folder = checkpoint(TIED_LLAMA, List.of(), null);
        // The same tensors now describe one layer too few.
        Files.writeString(dir.resolve("config.json"), TIED_LLAMA.replace("\"num_hidden_layers\": 2",
                "\"num_hidden_layers\": 3"));
        assertThatThrownBy(() -> Checkpoint.open(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining(folder.toString())
                .hasMessageContaining("tensor model.layers.2.input_layernorm.weight is missing");
    }

    @Test
    void untiedCheckpointNeedsItsLmHead() throws IOException {
        Path folder = checkpoint(TIED_LLAMA, List.of(), null);
        Files.writeString(dir.resolve("config.json"), TIED_LLAMA.replace("true", "false"));
        assertThatThrownBy(() -> Checkpoint.open(folder)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("tensor lm_head.weight is missing");
    }
}
