package io.distserve.kv.device;

import java.nio.ByteBuffer;

/** Page-locked host memory, seen as a direct ByteBuffer (sockets read into and write from it without a copy). */
public interface PinnedBuffer extends AutoCloseable {

    /** A view of the whole buffer: position 0, limit = capacity; callers set position and limit as they need. */
    ByteBuffer buffer();

    int capacity();

    /** Frees the memory. Idempotent; the buffer must not be used afterwards. */
    @Override
    void close();
}
