package io.distserve.engine.safetensors;

import static io.distserve.engine.safetensors.SafetensorsFiles.concat;
import static io.distserve.engine.safetensors.SafetensorsFiles.littleEndianFloats;
import static io.distserve.engine.safetensors.SafetensorsFiles.littleEndianShorts;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.model.CheckpointException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsFileTest {

    @TempDir
    Path dir;

    /** bf16 [1, -2, 0.5], f16 [[1, -2], [65504, 2^-24]], f32 [3.25], with metadata; tensors out of data order. */
    private Path threeDtypes() throws IOException {
        String header = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"half\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[6,14]},"
                + "\"brain\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                + "\"single\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[14,18]}}";
        byte[] data = concat(
                littleEndianShorts(0x3F80, 0xC000, 0x3F00),
                littleEndianShorts(0x3C00, 0xC000, 0x7BFF, 0x0001),
                littleEndianFloats(3.25f));
        return SafetensorsFiles.write(dir.resolve("three.safetensors"), header, data);
    }

    @Test
    void readsAllThreeDtypesAndTheMetadata() throws IOException {
        try (SafetensorsFile file = SafetensorsFile.open(threeDtypes())) {
            assertThat(file.header().metadata()).containsEntry("format", "pt");
            assertThat(file.tensors().keySet()).containsExactly("half", "brain", "single");
            TensorSpec half = file.tensors().get("half").spec();
            assertThat(half.dtype()).isEqualTo(DType.F16);
            assertThat(half.shape()).containsExactly(2, 2);
            assertThat(file.floats("brain")).containsExactly(1.0f, -2.0f, 0.5f);
            assertThat(file.floats("half")).containsExactly(1.0f, -2.0f, 65504f, 0x1p-24f);
            assertThat(file.floats("single")).containsExactly(3.25f);
            ByteBuffer raw = file.bytes("brain");
            assertThat(raw.isReadOnly()).isTrue();
            assertThat(raw.order()).isEqualTo(ByteOrder.LITTLE_ENDIAN);
            assertThat(raw.remaining()).isEqualTo(6);
            assertThat(raw.getShort(2)).isEqualTo((short) 0xC000);
        }
    }

    @Test
    void smallWindowsMapTheDataInSeveralPiecesWithTheSameContent() throws IOException {
        Path path = threeDtypes();
        try (SafetensorsFile whole = SafetensorsFile.open(path);
             SafetensorsFile windowed = SafetensorsFile.open(path, 8)) {
            assertThat(whole.windowCount()).isEqualTo(1);
            // [0,6) fits the first window; [6,14) is 8 bytes and starts the second; [14,18) needs a third.
            assertThat(windowed.windowCount()).isEqualTo(3);
            for (String name : whole.tensors().keySet()) {
                assertThat(windowed.floats(name)).as(name).containsExactly(whole.floats(name));
            }
        }
        try (SafetensorsFile tiny = SafetensorsFile.open(path, 1)) {
            // A tensor bigger than the window gets a window of its own.
            assertThat(tiny.windowCount()).isEqualTo(3);
            assertThat(tiny.floats("half")).containsExactly(1.0f, -2.0f, 65504f, 0x1p-24f);
        }
    }

    @Test
    void closedFileRefusesReads() throws IOException {
        SafetensorsFile file = SafetensorsFile.open(threeDtypes());
        file.close();
        assertThatThrownBy(() -> file.bytes("brain")).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("three.safetensors");
    }

    @Test
    void truncatedDataNamesFileAndTensor() throws IOException {
        Path path = threeDtypes();
        byte[] bytes = Files.readAllBytes(path);
        Files.write(path, Arrays.copyOf(bytes, bytes.length - 2));
        assertThatThrownBy(() -> SafetensorsFile.open(path)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("three.safetensors")
                .hasMessageContaining("tensor single")
                .hasMessageContaining("truncated");
    }

    @Test
    void headerLengthBeyondTheFileIsRejected() throws IOException {
        Path path = dir.resolve("long.safetensors");
        ByteBuffer b = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putLong(1_000_000).putInt(0);
        Files.write(path, b.array());
        assertThatThrownBy(() -> SafetensorsFile.open(path)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("long.safetensors")
                .hasMessageContaining("header length 1000000 exceeds the file size 12");
    }

    @Test
    void fileShorterThanTheLengthFieldIsRejected() throws IOException {
        Path path = Files.write(dir.resolve("stub.safetensors"), new byte[3]);
        assertThatThrownBy(() -> SafetensorsFile.open(path)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("stub.safetensors").hasMessageContaining("too short");
    }

    @Test
    void byteCountDisagreeingWithShapeNamesTheTensor() throws IOException {
        Path path = SafetensorsFiles.write(dir.resolve("bad.safetensors"),
                "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,6]}}", new byte[6]);
        assertThatThrownBy(() -> SafetensorsFile.open(path)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("bad.safetensors: tensor w")
                .hasMessageContaining("hold 6 bytes but shape [2, 2] of BF16 needs 8");
    }

    @Test
    void overlappingTensorsAreRejected() throws IOException {
        Path path = SafetensorsFiles.write(dir.resolve("overlap.safetensors"),
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]);
        assertThatThrownBy(() -> SafetensorsFile.open(path)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("overlap.safetensors: tensor b")
                .hasMessageContaining("overlap tensor a");
    }

    @Test
    void unsupportedDtypeNamesFileAndTensor() throws IOException {
        Path path = SafetensorsFiles.write(dir.resolve("ints.safetensors"),
                "{\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", new byte[8]);
        assertThatThrownBy(() -> SafetensorsFile.open(path)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("ints.safetensors: tensor ids")
                .hasMessageContaining("unsupported safetensors dtype I64");
    }

    @Test
    void malformedHeadersAreCheckpointErrors() throws IOException {
        String[] headers = {
            "not json",
            "[1,2]",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
            "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            "{\"__metadata__\":{\"n\":1}}",
        };
        for (int i = 0; i < headers.length; i++) {
            Path path = SafetensorsFiles.write(dir.resolve("h" + i + ".safetensors"), headers[i], new byte[4]);
            assertThatThrownBy(() -> SafetensorsFile.open(path)).as(headers[i])
                    .isInstanceOf(CheckpointException.class)
                    .hasMessageStartingWith(path.toString());
        }
    }
}
