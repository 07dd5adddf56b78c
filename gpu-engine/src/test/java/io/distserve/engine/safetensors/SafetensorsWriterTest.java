package io.distserve.engine.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.model.CheckpointException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsWriterTest {

    @TempDir
    Path dir;

    @Test
    void writtenTensorsReadBackInEveryDtype() {
        Path path = dir.resolve("rt.safetensors");
        float[] matrix = {0.5f, -1.25f, 2f, 4f, -8f, 0.0625f};
        List<TensorSpec> specs = List.of(
                new TensorSpec("m.bf16", DType.BF16, new long[] {2, 3}),
                new TensorSpec("m.f16", DType.F16, new long[] {3, 2}),
                new TensorSpec("m.f32", DType.F32, new long[] {6}),
                new TensorSpec("scalar", DType.F32, new long[] {}),
                new TensorSpec("empty", DType.BF16, new long[] {0, 4}));
        try (SafetensorsWriter writer = SafetensorsWriter.create(path, specs, Map.of("format", "pt"))) {
            // Any order: the header fixed every offset.
            writer.writeFloats("scalar", new float[] {7f});
            writer.writeFloats("m.f32", matrix);
            writer.writeFloats("m.f16", matrix);
            writer.writeFloats("m.bf16", matrix);
            writer.writeFloats("empty", new float[0]);
        }
        try (SafetensorsFile file = SafetensorsFile.open(path)) {
            assertThat(file.header().metadata()).isEqualTo(Map.of("format", "pt"));
            assertThat(file.header().dataStart() % 8).as("data section aligned").isZero();
            assertThat(file.tensors().keySet()).containsExactly("m.bf16", "m.f16", "m.f32", "scalar", "empty");
            for (String name : List.of("m.bf16", "m.f16", "m.f32")) {
                assertThat(file.floats(name)).as(name).containsExactly(matrix);
            }
            assertThat(file.tensors().get("m.f16").spec().shape()).containsExactly(3, 2);
            assertThat(file.floats("scalar")).containsExactly(7f);
            assertThat(file.floats("empty")).isEmpty();
        }
    }

    @Test
    void chunksWrittenFromSeveralThreadsAtTheirOffsetsFormTheTensor() throws IOException {
        Path path = dir.resolve("chunks.safetensors");
        int n = 4096;
        try (SafetensorsWriter writer = SafetensorsWriter.create(path,
                List.of(new TensorSpec("x", DType.F32, new long[] {n})), Map.of())) {
            IntStream.range(0, 16).parallel().forEach(chunk -> {
                ByteBuffer b = ByteBuffer.allocate(n / 16 * 4).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < n / 16; i++) {
                    b.putFloat(chunk * (n / 16) + i);
                }
                writer.write("x", (long) chunk * (n / 16) * 4, b.flip());
            });
        }
        try (SafetensorsFile file = SafetensorsFile.open(path)) {
            assertThat(Files.size(path)).isEqualTo(file.header().dataStart() + n * 4L);
            float[] x = file.floats("x");
            for (int i = 0; i < n; i++) {
                assertThat(x[i]).isEqualTo(i);
            }
        }
    }

    @Test
    void closeFailsWhenATensorIsIncomplete() {
        Path path = dir.resolve("partial.safetensors");
        SafetensorsWriter writer = SafetensorsWriter.create(path,
                List.of(new TensorSpec("a", DType.F32, new long[] {2}), new TensorSpec("b", DType.F32, new long[] {2})),
                Map.of());
        writer.writeFloats("a", new float[] {1, 2});
        writer.write("b", 0, ByteBuffer.allocate(4));
        assertThatThrownBy(writer::close).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("partial.safetensors: tensor b received 4 of its 8 bytes");
    }

    @Test
    void writesOutsideATensorAreRefused() {
        Path path = dir.resolve("bounds.safetensors");
        try (SafetensorsWriter writer = SafetensorsWriter.create(path,
                List.of(new TensorSpec("a", DType.F32, new long[] {2})), Map.of())) {
            assertThatThrownBy(() -> writer.write("a", 4, ByteBuffer.allocate(8)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tensor a");
            assertThatThrownBy(() -> writer.write("nope", 0, ByteBuffer.allocate(4)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tensor nope was not declared");
            writer.writeFloats("a", new float[] {1, 2});
        }
    }
}
