package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.PinnedBuffer;
import java.nio.ByteBuffer;

/**
 * The staging of one socket's traffic through GPU memory: a stream of its own and {@link StagingOptions#buffers()}
 * pinned buffers, each with the event of the last copy into or out of it. A slot is {@link #settle settled} (its copy
 * waited for) before its buffer is touched again. Made on, and used from, one thread, which it binds to the GPU.
 */
final class StagingRing implements AutoCloseable {

    final DeviceRegion region;
    final StagingOptions options;
    final GpuStream stream;
    private final PinnedBuffer[] buffers;
    private final ByteBuffer[] views;
    private final GpuEvent[] copied;

    StagingRing(DeviceRegion region, StagingOptions options) {
        this.region = region;
        this.options = options;
        region.device().bind(); // this thread talks to the GPU from now on
        this.stream = region.device().newStream();
        this.buffers = new PinnedBuffer[options.buffers()];
        this.views = new ByteBuffer[options.buffers()];
        this.copied = new GpuEvent[options.buffers()];
        try {
            for (int i = 0; i < buffers.length; i++) {
                buffers[i] = region.device().allocatePinned(options.chunkBytes());
                views[i] = buffers[i].buffer();
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    int size() {
        return buffers.length;
    }

    PinnedBuffer buffer(int slot) {
        return buffers[slot];
    }

    /** The slot's buffer as a ByteBuffer, cleared and limited to {@code length} bytes. */
    ByteBuffer view(int slot, int length) {
        return views[slot].clear().limit(length);
    }

    /** Marks the copy just enqueued into or out of the slot's buffer. */
    void copied(int slot) {
        copied[slot] = stream.record();
    }

    /** Waits for the slot's last copy, so its buffer can be read or refilled. */
    void settle(int slot) {
        GpuEvent e = copied[slot];
        if (e != null) {
            copied[slot] = null;
            try {
                e.await();
            } finally {
                e.close();
            }
        }
    }

    void settleAll() {
        for (int i = 0; i < copied.length; i++) {
            settle(i);
        }
    }

    /** Waits for the copies in flight (closing the stream does), then frees the buffers. */
    @Override
    public void close() {
        try {
            if (stream != null) {
                stream.close();
            }
        } finally {
            for (int i = 0; i < buffers.length; i++) {
                if (copied[i] != null) {
                    copied[i].close();
                    copied[i] = null;
                }
                if (buffers[i] != null) {
                    buffers[i].close();
                }
            }
        }
    }
}
