package io.distserve.engine.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.model.CheckpointException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Writes a safetensors file whose tensors are all declared up front: the header goes out at creation, so tensor
 * data can then be streamed in any order and from several threads ({@link #write} is a positional write), without
 * ever holding the whole file in memory. {@link #close} fails if a tensor did not receive all its bytes.
 */
public final class SafetensorsWriter implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final FileChannel channel;
    private final long dataStart;
    private final long dataSize;
    private final Map<String, Slot> slots;
    private boolean closed;

    private record Slot(TensorEntry entry, AtomicLong written) {
    }

    private SafetensorsWriter(Path file, FileChannel channel, long dataStart, long dataSize, Map<String, Slot> slots) {
        this.file = file;
        this.channel = channel;
        this.dataStart = dataStart;
        this.dataSize = dataSize;
        this.slots = slots;
    }

    /**
     * Creates (or truncates) {@code file} and writes its header; tensors are laid out contiguously in the given
     * order.
     */
    public static SafetensorsWriter create(Path file, List<TensorSpec> tensors, Map<String, String> metadata) {
        Map<String, Slot> slots = new LinkedHashMap<>();
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject(SafetensorsHeader.METADATA_KEY);
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (TensorSpec spec : tensors) {
            if (spec.name().equals(SafetensorsHeader.METADATA_KEY) || slots.containsKey(spec.name())) {
                throw new IllegalArgumentException(file + ": duplicate or reserved tensor name " + spec.name());
            }
            long end = offset + spec.byteSize();
            slots.put(spec.name(), new Slot(new TensorEntry(spec, offset, end), new AtomicLong()));
            ObjectNode node = header.putObject(spec.name());
            node.put("dtype", spec.dtype().safetensorsName());
            ArrayNode shape = node.putArray("shape");
            Arrays.stream(spec.shape()).forEach(shape::add);
            node.putArray("data_offsets").add(offset).add(end);
            offset = end;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot serialise a header", e);
        }
        // Pad with spaces to a multiple of 8, as the reference writer does, so the data section is 8-byte aligned.
        int paddedLength = (json.length + 7) & ~7;
        ByteBuffer head = ByteBuffer.allocate(8 + paddedLength).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(paddedLength).put(json);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        head.flip();
        FileChannel channel = null;
        try {
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
            writeFully(channel, head, 0);
            return new SafetensorsWriter(file, channel, 8L + paddedLength, offset, slots);
        } catch (IOException e) {
            closeQuietly(channel);
            throw new CheckpointException(file + ": cannot write: " + e.getMessage(), e);
        }
    }

    public Path path() {
        return file;
    }

    /** Total size the file will have once every tensor is written. */
    public long fileSize() {
        return dataStart + dataSize;
    }

    /**
     * Writes {@code bytes} (from its position to its limit, consuming them) at {@code offsetInTensor} within the
     * tensor's data. Thread-safe; callers write disjoint ranges.
     */
    public void write(String name, long offsetInTensor, ByteBuffer bytes) {
        Slot slot = slot(name);
        int length = bytes.remaining();
        if (offsetInTensor < 0 || offsetInTensor + length > slot.entry().byteSize()) {
            throw new IllegalArgumentException(file + ": tensor " + name + ": writing " + length + " bytes at "
                    + offsetInTensor + " overruns its " + slot.entry().byteSize() + " bytes");
        }
        try {
            writeFully(channel, bytes, dataStart + slot.entry().begin() + offsetInTensor);
        } catch (IOException e) {
            throw new CheckpointException(file + ": tensor " + name + ": cannot write: " + e.getMessage(), e);
        }
        slot.written().addAndGet(length);
    }

    /** Writes a whole tensor. */
    public void write(String name, ByteBuffer bytes) {
        write(name, 0, bytes);
    }

    /** Writes a whole tensor given as floats, converted to its declared dtype. */
    public void writeFloats(String name, float[] values) {
        TensorSpec spec = slot(name).entry().spec();
        if (values.length != spec.elementCount()) {
            throw new IllegalArgumentException(file + ": tensor " + name + " has " + spec.elementCount()
                    + " elements, got " + values.length);
        }
        write(name, FloatCodec.encode(values, spec.dtype()));
    }

    private Slot slot(String name) {
        Slot slot = slots.get(name);
        if (slot == null) {
            throw new IllegalArgumentException(file + ": tensor " + name + " was not declared");
        }
        return slot;
    }

    /**
     * Closes the file (no fsync: a generator interrupted by a crash leaves a checkpoint that fails validation).
     *
     * @throws CheckpointException if a tensor was not completely written (the file would be unreadable)
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            channel.close();
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot finish writing: " + e.getMessage(), e);
        }
        for (Slot slot : slots.values()) {
            if (slot.written().get() != slot.entry().byteSize()) {
                throw new CheckpointException(file + ": tensor " + slot.entry().name() + " received "
                        + slot.written().get() + " of its " + slot.entry().byteSize() + " bytes");
            }
        }
    }

    private static void writeFully(FileChannel channel, ByteBuffer src, long position) throws IOException {
        long at = position;
        while (src.hasRemaining()) {
            at += channel.write(src, at);
        }
    }

    private static void closeQuietly(FileChannel channel) {
        if (channel != null) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // The creation failure being reported matters more than a failed close.
            }
        }
    }
}
