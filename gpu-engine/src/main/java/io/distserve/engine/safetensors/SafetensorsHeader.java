package io.distserve.engine.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.model.CheckpointException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parsed and validated header of a safetensors file: an 8-byte little-endian length, then that many bytes of
 * JSON mapping each tensor name to {@code {dtype, shape, data_offsets}}, plus an optional {@code __metadata__}
 * object of strings. Validation covers everything that would otherwise surface later as an out-of-bounds read.
 *
 * @param file       the file, for messages
 * @param dataStart  absolute position of the data section (8 + header length)
 * @param tensors    the tensors, in header order
 * @param metadata   the {@code __metadata__} entries (empty when absent)
 */
public record SafetensorsHeader(Path file, long dataStart, Map<String, TensorEntry> tensors, Map<String, String> metadata) {

    /** The reference implementation's cap; it also keeps a corrupt length from asking for gigabytes of heap. */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    static final String METADATA_KEY = "__metadata__";

    private static final ObjectMapper JSON = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    public SafetensorsHeader {
        tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
    }

    /** Reads the header of {@code file} through {@code channel}; the data section is not touched. */
    public static SafetensorsHeader read(Path file, FileChannel channel) throws IOException {
        long fileSize = channel.size();
        if (fileSize < 8) {
            throw error(file, "file is " + fileSize + " bytes, too short for a safetensors header");
        }
        ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(channel, lengthBytes, 0);
        long headerLength = lengthBytes.flip().getLong();
        if (headerLength < 2 || headerLength > fileSize - 8) {
            throw error(file, "header length " + Long.toUnsignedString(headerLength) + " exceeds the file size "
                    + fileSize + " (truncated or not a safetensors file)");
        }
        if (headerLength > MAX_HEADER_BYTES) {
            throw error(file, "header length " + headerLength + " is over the " + MAX_HEADER_BYTES + "-byte limit");
        }
        ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
        readFully(channel, headerBytes, 8);
        String json = new String(headerBytes.array(), StandardCharsets.UTF_8);
        return parse(file, json, fileSize - 8 - headerLength, 8 + headerLength);
    }

    static SafetensorsHeader parse(Path file, String json, long dataSize, long dataStart) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw error(file, "header is not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw error(file, "header is not a JSON object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        Map<String, TensorEntry> tensors = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            if (field.getKey().equals(METADATA_KEY)) {
                metadata.putAll(parseMetadata(file, field.getValue()));
            } else {
                TensorEntry entry = parseTensor(file, field.getKey(), field.getValue(), dataSize);
                tensors.put(entry.name(), entry);
            }
        }
        checkNoOverlap(file, tensors.values());
        return new SafetensorsHeader(file, dataStart, tensors, metadata);
    }

    private static Map<String, String> parseMetadata(Path file, JsonNode node) {
        if (!node.isObject()) {
            throw error(file, METADATA_KEY + " is not an object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw error(file, METADATA_KEY + " entry '" + e.getKey() + "' is not a string");
            }
            metadata.put(e.getKey(), e.getValue().asText());
        }
        return metadata;
    }

    private static TensorEntry parseTensor(Path file, String name, JsonNode node, long dataSize) {
        String where = "tensor " + name;
        if (!node.isObject()) {
            throw error(file, where + ": header entry is not an object");
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw error(file, where + ": missing or non-string 'dtype'");
        }
        DType dtype;
        try {
            dtype = DType.fromSafetensors(dtypeNode.asText());
        } catch (IllegalArgumentException e) {
            throw error(file, where + ": " + e.getMessage());
        }
        long[] shape = nonNegativeLongs(file, where, node.get("shape"), "shape", -1);
        long[] offsets = nonNegativeLongs(file, where, node.get("data_offsets"), "data_offsets", 2);
        long begin = offsets[0];
        long end = offsets[1];
        if (begin > end || end > dataSize) {
            throw error(file, where + ": data_offsets [" + begin + ", " + end + "] lie outside the data section of "
                    + dataSize + " bytes (truncated file?)");
        }
        TensorSpec spec = new TensorSpec(name, dtype, shape);
        long expectedBytes;
        try {
            expectedBytes = spec.byteSize();
        } catch (ArithmeticException e) {
            throw error(file, where + ": shape " + java.util.Arrays.toString(shape) + " overflows");
        }
        if (expectedBytes != end - begin) {
            throw error(file, where + ": data_offsets [" + begin + ", " + end + "] hold " + (end - begin)
                    + " bytes but shape " + java.util.Arrays.toString(shape) + " of " + dtype.safetensorsName()
                    + " needs " + expectedBytes);
        }
        return new TensorEntry(spec, begin, end);
    }

    private static long[] nonNegativeLongs(Path file, String where, JsonNode node, String field, int requiredLength) {
        if (node == null || !node.isArray() || (requiredLength >= 0 && node.size() != requiredLength)) {
            throw error(file, where + ": '" + field + "' must be an array"
                    + (requiredLength >= 0 ? " of " + requiredLength + " integers" : " of integers") + ", got " + node);
        }
        long[] values = new long[node.size()];
        for (int i = 0; i < values.length; i++) {
            JsonNode v = node.get(i);
            if (!v.canConvertToLong() || !v.isIntegralNumber() || v.asLong() < 0) {
                throw error(file, where + ": '" + field + "' must hold non-negative integers, got " + node);
            }
            values[i] = v.asLong();
        }
        return values;
    }

    private static void checkNoOverlap(Path file, Iterable<TensorEntry> entries) {
        List<TensorEntry> sorted = new ArrayList<>();
        entries.forEach(sorted::add);
        sorted.removeIf(e -> e.byteSize() == 0);
        sorted.sort(Comparator.comparingLong(TensorEntry::begin));
        for (int i = 1; i < sorted.size(); i++) {
            TensorEntry previous = sorted.get(i - 1);
            TensorEntry current = sorted.get(i);
            if (current.begin() < previous.end()) {
                throw error(file, "tensor " + current.name() + ": data_offsets [" + current.begin() + ", "
                        + current.end() + "] overlap tensor " + previous.name() + " [" + previous.begin() + ", "
                        + previous.end() + "]");
            }
        }
    }

    private static void readFully(FileChannel channel, ByteBuffer dst, long position) throws IOException {
        long at = position;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, at);
            if (n < 0) {
                throw new IOException("unexpected end of file at byte " + at);
            }
            at += n;
        }
    }

    private static CheckpointException error(Path file, String message) {
        return new CheckpointException(file + ": " + message);
    }
}
