package io.distserve.engine.safetensors;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Hand-made safetensors files, byte by byte, independent of {@link SafetensorsWriter}. */
final class SafetensorsFiles {

    private SafetensorsFiles() {
    }

    static Path write(Path file, String headerJson, byte[] data) throws IOException {
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bytes = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(header.length).put(header).put(data);
        Files.write(file, bytes.array());
        return file;
    }

    static byte[] littleEndianShorts(int... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            b.putShort((short) v);
        }
        return b.array();
    }

    static byte[] littleEndianFloats(float... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        return b.array();
    }

    static byte[] concat(byte[]... parts) {
        int length = 0;
        for (byte[] p : parts) {
            length += p.length;
        }
        ByteBuffer b = ByteBuffer.allocate(length);
        for (byte[] p : parts) {
            b.put(p);
        }
        return b.array();
    }
}
