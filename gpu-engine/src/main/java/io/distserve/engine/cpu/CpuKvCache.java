package io.distserve.engine.cpu;

import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.safetensors.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * The paged KV pool of the CPU backend: float32, native byte order, in direct {@link ByteBuffer}s laid out exactly as
 * {@link KvCacheLayout} says (block-major; inside a block {@code [layer][k|v][kvHead][slot][headDim]}).
 *
 * <p>The pool may exceed what one buffer can hold, so it is cut into chunks of {@link #blocksPerChunk()} whole blocks
 * (at most {@link #MAX_CHUNK_BYTES} each): block {@code b} lives in chunk {@code b / blocksPerChunk()} at byte
 * {@code (b % blocksPerChunk()) * bytesPerBlock()}. The KV-transfer layer reads and writes blocks through
 * {@link #chunks()} or {@link #block(int)}; the backend through {@link #writeSlot} and {@link #readRun}.
 */
public final class CpuKvCache implements AutoCloseable {

    /** Largest chunk: 1 GiB. */
    public static final long MAX_CHUNK_BYTES = 1L << 30;

    private final KvCacheLayout layout;
    private final int blocksPerChunk;
    private final int floatsPerBlock;
    private volatile List<ByteBuffer> chunks;
    private volatile FloatBuffer[] floats;

    /** Allocates (zeroed) {@code layout.totalBytes()} of direct memory. The layout's dtype must be F32. */
    public CpuKvCache(KvCacheLayout layout) {
        this(layout, MAX_CHUNK_BYTES);
    }

    CpuKvCache(KvCacheLayout layout, long maxChunkBytes) {
        if (layout.dtype() != DType.F32) {
            throw new IllegalArgumentException("the CPU KV cache stores F32, layout says " + layout.dtype());
        }
        long perBlock = layout.bytesPerBlock();
        if (perBlock > maxChunkBytes) {
            throw new IllegalArgumentException("one KV block is " + perBlock + " bytes, more than a chunk ("
                    + maxChunkBytes + "): use a smaller block size");
        }
        this.layout = layout;
        this.floatsPerBlock = (int) layout.elementsPerBlock();
        this.blocksPerChunk = (int) Math.max(1, Math.min(Math.max(1, layout.numBlocks()), maxChunkBytes / perBlock));
        List<ByteBuffer> list = new ArrayList<>();
        List<FloatBuffer> fl = new ArrayList<>();
        for (int first = 0; first < layout.numBlocks(); first += blocksPerChunk) {
            int blocks = Math.min(blocksPerChunk, layout.numBlocks() - first);
            ByteBuffer chunk = ByteBuffer.allocateDirect((int) (blocks * perBlock)).order(ByteOrder.nativeOrder());
            list.add(chunk);
            fl.add(chunk.asFloatBuffer());
        }
        this.chunks = List.copyOf(list);
        this.floats = fl.toArray(new FloatBuffer[0]);
    }

    public KvCacheLayout layout() {
        return layout;
    }

    public long bytesPerBlock() {
        return layout.bytesPerBlock();
    }

    public int blocksPerChunk() {
        return blocksPerChunk;
    }

    public int numBlocks() {
        return layout.numBlocks();
    }

    /**
     * The chunks, in block order, as read/write views of the pool (native byte order; each view has its own
     * position and limit, so callers do not disturb each other).
     */
    public List<ByteBuffer> chunks() {
        List<ByteBuffer> c = live();
        List<ByteBuffer> views = new ArrayList<>(c.size());
        for (ByteBuffer b : c) {
            views.add(b.duplicate().order(ByteOrder.nativeOrder()));
        }
        return views;
    }

    /** Index in {@link #chunks()} of the chunk that holds {@code block}. */
    public int chunkIndex(int block) {
        checkBlock(block);
        return block / blocksPerChunk;
    }

    /** Byte offset of {@code block} inside its chunk. */
    public long byteOffsetInChunk(int block) {
        checkBlock(block);
        return (long) (block % blocksPerChunk) * layout.bytesPerBlock();
    }

    /** A read/write view of exactly the bytes of {@code block} (native byte order). */
    public ByteBuffer block(int block) {
        ByteBuffer chunk = live().get(chunkIndex(block));
        return chunk.slice((int) byteOffsetInChunk(block), (int) layout.bytesPerBlock()).order(ByteOrder.nativeOrder());
    }

    /** Writes one token's {@code headDim} values of (layer, k-or-v, kvHead) at (block, slot). */
    void writeSlot(int block, int layer, int kOrV, int head, int slot, float[] src, int srcOffset) {
        int hd = layout.headDim();
        floats[block / blocksPerChunk].put(floatIndex(block, layer, kOrV, head) + slot * hd, src, srcOffset, hd);
    }

    /** Reads slots {@code [0, slots)} of (layer, k-or-v, kvHead) in {@code block}: {@code slots * headDim} floats. */
    void readRun(int block, int layer, int kOrV, int head, int slots, float[] dst, int dstOffset) {
        floats[block / blocksPerChunk].get(floatIndex(block, layer, kOrV, head), dst, dstOffset,
                slots * layout.headDim());
    }

    private int floatIndex(int block, int layer, int kOrV, int head) {
        // elementIndex of the same block within a pool that starts at this block's chunk
        return (block % blocksPerChunk) * floatsPerBlock + (int) layout.elementIndex(0, layer, kOrV, head);
    }

    private void checkBlock(int block) {
        if (block < 0 || block >= layout.numBlocks()) {
            throw new IndexOutOfBoundsException("block " + block + " outside [0, " + layout.numBlocks() + ")");
        }
    }

    private List<ByteBuffer> live() {
        List<ByteBuffer> c = chunks;
        if (c == null) {
            throw new IllegalStateException("KV cache is closed");
        }
        return c;
    }

    /**
     * Drops the pool. The direct memory goes back when the buffers are collected (Java 17 has no public way to free
     * a direct buffer at once); views handed out earlier keep it alive. Idempotent.
     */
    @Override
    public void close() {
        chunks = null;
        floats = null;
    }
}
