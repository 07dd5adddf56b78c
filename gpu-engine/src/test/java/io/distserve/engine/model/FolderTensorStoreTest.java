package io.distserve.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.safetensors.DType;
import io.distserve.engine.safetensors.SafetensorsWriter;
import io.distserve.engine.safetensors.TensorSpec;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FolderTensorStoreTest {

    @TempDir
    Path dir;

    private static void writeFile(Path file, Map<String, float[]> tensors, Map<String, long[]> shapes) {
        List<TensorSpec> specs = tensors.keySet().stream()
                .map(n -> new TensorSpec(n, DType.BF16, shapes.get(n))).toList();
        try (SafetensorsWriter w = SafetensorsWriter.create(file, specs, Map.of("format", "pt"))) {
            tensors.forEach(w::writeFloats);
        }
    }

    private void writeShards() throws IOException {
        writeFile(dir.resolve("model-00001-of-00002.safetensors"),
                Map.of("a", new float[] {1, 2, 3, 4, 5, 6}), Map.of("a", new long[] {2, 3}));
        writeFile(dir.resolve("model-00002-of-00002.safetensors"),
                Map.of("b", new float[] {-1, -2}), Map.of("b", new long[] {2}));
        Files.writeString(dir.resolve("model.safetensors.index.json"), """
                {"metadata": {"total_size": 16},
                 "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
                """);
    }

    @Test
    void readsASingleFile() {
        writeFile(dir.resolve("model.safetensors"), Map.of("w", new float[] {0.5f, 1.5f}), Map.of("w", new long[] {2}));
        try (FolderTensorStore store = FolderTensorStore.open(dir)) {
            assertThat(store.names()).containsExactly("w");
            assertThat(store.readFloats("w", 2)).containsExactly(0.5f, 1.5f);
            assertThat(store.dtype("w")).isEqualTo(DType.BF16);
            assertThat(store.shape("w")).containsExactly(2);
            ByteBuffer raw = store.rawBytes("w", 2);
            assertThat(raw.remaining()).isEqualTo(4);
            assertThat(raw.getShort(0)).isEqualTo((short) 0x3F00);
        }
    }

    @Test
    void readsShardsThroughTheIndex() throws IOException {
        writeShards();
        // A stray file that the index does not mention is not read.
        writeFile(dir.resolve("stray.safetensors"), Map.of("a", new float[] {9}), Map.of("a", new long[] {1}));
        try (FolderTensorStore store = FolderTensorStore.open(dir)) {
            assertThat(store.names()).containsExactlyInAnyOrder("a", "b");
            assertThat(store.readFloats("a", 2, 3)).containsExactly(1, 2, 3, 4, 5, 6);
            assertThat(store.readFloats("b", 2)).containsExactly(-1, -2);
            assertThat(store.fileOf("b").getFileName().toString()).isEqualTo("model-00002-of-00002.safetensors");
        }
    }

    @Test
    void withoutAnIndexReadsEverySafetensorsFile() throws IOException {
        writeShards();
        Files.delete(dir.resolve("model.safetensors.index.json"));
        try (FolderTensorStore store = FolderTensorStore.open(dir)) {
            assertThat(store.names()).containsExactlyInAnyOrder("a", "b");
        }
    }

    @Test
    void aTensorInTwoFilesWithoutAnIndexIsAmbiguous() {
        writeFile(dir.resolve("x.safetensors"), Map.of("a", new float[] {1}), Map.of("a", new long[] {1}));
        writeFile(dir.resolve("y.safetensors"), Map.of("a", new float[] {2}), Map.of("a", new long[] {1}));
        assertThatThrownBy(() -> FolderTensorStore.open(dir)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("y.safetensors: tensor a is also in x.safetensors");
    }

    @Test
    void wrongShapeNamesFileTensorAndBothShapes() throws IOException {
        writeShards();
        try (FolderTensorStore store = FolderTensorStore.open(dir)) {
            assertThatThrownBy(() -> store.readFloats("a", 3, 2)).isInstanceOf(CheckpointException.class)
                    .hasMessageStartingWith("model-00001-of-00002.safetensors: tensor a has shape [2, 3], expected [3, 2]");
            assertThatThrownBy(() -> store.rawBytes("b", 2, 1)).isInstanceOf(CheckpointException.class)
                    .hasMessageStartingWith("model-00002-of-00002.safetensors: tensor b has shape [2], expected [2, 1]");
        }
    }

    @Test
    void missingTensorNamesTensorAndFolder() throws IOException {
        writeShards();
        try (FolderTensorStore store = FolderTensorStore.open(dir)) {
            assertThat(store.contains("c")).isFalse();
            assertThatThrownBy(() -> store.readFloats("c", 1)).isInstanceOf(CheckpointException.class)
                    .hasMessageContaining(dir.toString())
                    .hasMessageContaining("tensor c is missing");
        }
    }

    @Test
    void indexPointingAtAMissingFileOrTensorIsNamed() throws IOException {
        writeShards();
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"c\": \"gone.safetensors\"}}");
        assertThatThrownBy(() -> FolderTensorStore.open(dir)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("model.safetensors.index.json: tensor c maps to gone.safetensors");
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"weight_map\": {\"b\": \"model-00001-of-00002.safetensors\"}}");
        assertThatThrownBy(() -> FolderTensorStore.open(dir)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("model-00001-of-00002.safetensors: tensor b is listed");
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"weight_map\": {\"a\": \"../elsewhere.safetensors\"}}");
        assertThatThrownBy(() -> FolderTensorStore.open(dir)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("not a file name in");
    }

    @Test
    void emptyFolderAndMissingFolderAreNamed() {
        assertThatThrownBy(() -> FolderTensorStore.open(dir)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining(dir + ": no model.safetensors");
        Path absent = dir.resolve("absent");
        assertThatThrownBy(() -> FolderTensorStore.open(absent)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining(absent + ": no such folder");
    }

    @Test
    void closedStoreRefusesReads() {
        writeFile(dir.resolve("model.safetensors"), Map.of("w", new float[] {1}), Map.of("w", new long[] {1}));
        FolderTensorStore store = FolderTensorStore.open(dir);
        store.close();
        assertThatThrownBy(() -> store.readFloats("w", 1)).isInstanceOf(IllegalStateException.class);
    }
}
