package io.distserve.kv.transfer;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * A region over a list of ByteBuffers (the CPU engine's KV pool: direct buffers of at most 1 GiB each, one block never
 * straddling two). Absolute offsets map to (chunk, offset in chunk); ranges that cross a chunk end are rejected
 * rather than silently split, since in memory they are not contiguous.
 *
 * <p>Each chunk covers the buffer's bytes between its position and limit at construction time; later changes to the
 * caller's buffer position do not move the region. Heap buffers are accepted (handy in tests) but direct ones are
 * what makes socket I/O zero-copy: the JDK copies heap buffers through a temporary direct buffer.
 */
public final class ByteBufferRegion implements MemoryRegion {

    private final List<ByteBuffer> chunks;
    private final RegionLayout layout;

    public ByteBufferRegion(List<ByteBuffer> buffers) {
        if (buffers == null || buffers.isEmpty()) {
            throw new IllegalArgumentException("a region needs at least one buffer");
        }
        List<ByteBuffer> views = new ArrayList<>(buffers.size());
        List<Long> sizes = new ArrayList<>(buffers.size());
        for (int i = 0; i < buffers.size(); i++) {
            ByteBuffer b = buffers.get(i);
            if (b == null || !b.hasRemaining()) {
                throw new IllegalArgumentException("chunk " + i + " is null or empty");
            }
            views.add(b.slice()); // private position/limit; shares the memory
            sizes.add((long) b.remaining());
        }
        chunks = List.copyOf(views);
        layout = new RegionLayout(sizes);
    }

    /** Allocates {@code chunkCount} direct chunks of {@code chunkBytes} each. */
    public static ByteBufferRegion allocateDirect(int chunkCount, int chunkBytes) {
        List<ByteBuffer> list = new ArrayList<>(chunkCount);
        for (int i = 0; i < chunkCount; i++) {
            list.add(ByteBuffer.allocateDirect(chunkBytes));
        }
        return new ByteBufferRegion(list);
    }

    @Override
    public RegionLayout layout() {
        return layout;
    }

    public int chunkCount() {
        return chunks.size();
    }

    @Override
    public ByteBuffer slice(long offset, int length) {
        layout.checkRange(offset, length);
        int chunk = layout.segmentOf(offset);
        int inChunk = (int) (offset - layout.segmentStart(chunk));
        // Absolute slice: reads no mutable state of the shared view, so concurrent callers are safe.
        return chunks.get(chunk).slice(inChunk, length);
    }

    @Override
    public String toString() {
        return "ByteBufferRegion[size=" + size() + ", chunks=" + chunks.size() + "]";
    }
}
