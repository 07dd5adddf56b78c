package io.distserve.kv.transfer;

import java.nio.ByteBuffer;

/**
 * The memory a transport serves to peers and pulls into: an engine's registered KV pool, addressed by absolute byte
 * offset from 0 to {@link #size()}. The region is made of segments (see {@link #layout()}); a transfer never spans
 * two of them.
 *
 * <p>Implementations must be safe for concurrent {@link #slice} calls from several threads: transports read and
 * write disjoint ranges in parallel.
 */
public interface MemoryRegion {

    /** Total size in bytes. */
    default long size() {
        return layout().size();
    }

    /** Segment boundaries; a peer plans its reads with it. */
    RegionLayout layout();

    /**
     * Whether {@link #slice} works. Host memory says yes; a CUDA device-memory region that is not mapped into the
     * host address space says no, and only transports that can address it directly (nvlink, rdma with GPUDirect)
     * accept it.
     */
    default boolean isHostAccessible() {
        return true;
    }

    /**
     * A view of [offset, offset + length) that shares memory with the region (position 0, limit length, independent
     * position/limit so threads don't interfere).
     *
     * @throws IllegalArgumentException if the range falls outside the region or crosses a segment end
     * @throws UnsupportedOperationException if the region is not host accessible
     */
    ByteBuffer slice(long offset, int length);
}
