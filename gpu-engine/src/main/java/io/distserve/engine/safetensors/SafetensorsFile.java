package io.distserve.engine.safetensors;

import io.distserve.engine.model.CheckpointException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One safetensors file, memory-mapped read-only. A {@link MappedByteBuffer} cannot exceed 2 GiB, so the data
 * section is mapped in windows of at most {@code maxWindowBytes}, each holding whole tensors (a tensor larger than a
 * window gets a window of its own). The channel is closed once mapped: mappings outlive it. Tensor views are
 * independent slices, safe to read from several threads.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** 1 GiB: well under the 2 GiB cap of a single mapping, and few enough windows for a 16 GB shard. */
    static final long DEFAULT_MAX_WINDOW_BYTES = 1L << 30;

    private final SafetensorsHeader header;
    private Map<String, ByteBuffer> views;
    private List<MappedByteBuffer> windows;

    private SafetensorsFile(SafetensorsHeader header, List<MappedByteBuffer> windows, Map<String, ByteBuffer> views) {
        this.header = header;
        this.windows = windows;
        this.views = views;
    }

    public static SafetensorsFile open(Path file) {
        return open(file, DEFAULT_MAX_WINDOW_BYTES);
    }

    /** With a chosen window size, so that tests can exercise several windows without multi-gigabyte files. */
    static SafetensorsFile open(Path file, long maxWindowBytes) {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            SafetensorsHeader header = SafetensorsHeader.read(file, channel);
            List<TensorEntry> byOffset = new ArrayList<>(header.tensors().values());
            byOffset.sort(Comparator.comparingLong(TensorEntry::begin));
            List<MappedByteBuffer> windows = new ArrayList<>();
            Map<String, ByteBuffer> views = new HashMap<>();
            int i = 0;
            while (i < byOffset.size()) {
                long windowBegin = byOffset.get(i).begin();
                int j = i;
                long windowEnd = windowBegin;
                while (j < byOffset.size() && (j == i || byOffset.get(j).end() - windowBegin <= maxWindowBytes)) {
                    TensorEntry entry = byOffset.get(j);
                    if (entry.byteSize() > Integer.MAX_VALUE) {
                        throw new CheckpointException(file + ": tensor " + entry.name() + " is " + entry.byteSize()
                                + " bytes; tensors of 2 GiB or more are not supported");
                    }
                    windowEnd = Math.max(windowEnd, entry.end());
                    j++;
                }
                MappedByteBuffer window = channel.map(FileChannel.MapMode.READ_ONLY,
                        header.dataStart() + windowBegin, windowEnd - windowBegin);
                windows.add(window);
                for (int k = i; k < j; k++) {
                    TensorEntry entry = byOffset.get(k);
                    ByteBuffer view = window.slice((int) (entry.begin() - windowBegin), (int) entry.byteSize())
                            .order(ByteOrder.LITTLE_ENDIAN);
                    views.put(entry.name(), view);
                }
                i = j;
            }
            return new SafetensorsFile(header, windows, views);
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    public Path path() {
        return header.file();
    }

    public SafetensorsHeader header() {
        return header;
    }

    public Map<String, TensorEntry> tensors() {
        return header.tensors();
    }

    /** Number of mappings; more than one only for data sections over the window size. */
    int windowCount() {
        return checkOpen().size();
    }

    /** A read-only little-endian view of the tensor's bytes, positioned at 0. */
    public ByteBuffer bytes(String name) {
        checkOpen();
        ByteBuffer view = views.get(name);
        if (view == null) {
            throw new CheckpointException(header.file() + ": no tensor " + name);
        }
        return view.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The tensor converted to float32. */
    public float[] floats(String name) {
        ByteBuffer bytes = bytes(name);
        TensorEntry entry = header.tensors().get(name);
        float[] values = new float[Math.toIntExact(entry.spec().elementCount())];
        FloatCodec.decode(bytes, entry.spec().dtype(), values);
        return values;
    }

    private List<MappedByteBuffer> checkOpen() {
        if (windows == null) {
            throw new IllegalStateException(header.file() + " is closed");
        }
        return windows;
    }

    /**
     * Drops the mappings. Java 17 offers no supported explicit unmap, so the memory is returned when the buffers
     * (and any views handed out) are garbage collected.
     */
    @Override
    public void close() {
        windows = null;
        views = null;
    }
}
