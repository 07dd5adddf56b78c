package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.PinnedBuffer;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;

/**
 * Lands socket bytes in GPU memory through a ring of pinned buffers: each chunk is read from the socket into a free
 * buffer and copied host-to-device on a stream of its own while the next chunk is read. A buffer is reused only
 * once its copy's event has completed. A payload's callback runs when the event of its last chunk has (the stream
 * runs in order, so every earlier chunk is in too), without holding the socket for it: pending payloads are
 * checked at each chunk, and the reader flushes when it has nothing else queued.
 */
final class StagedDeviceReceiver implements RegionReceiver {

    private record Landing(GpuEvent lastCopy, Runnable landed) {
    }

    private final DeviceRegion region;
    private final StagingOptions staging;
    private final GpuStream stream;
    private final PinnedBuffer[] buffers;
    private final ByteBuffer[] views;
    private final GpuEvent[] copied;
    private final ArrayDeque<Landing> landings = new ArrayDeque<>();
    private int next;

    StagedDeviceReceiver(DeviceRegion region, StagingOptions staging) {
        this.region = region;
        this.staging = staging;
        region.device().bind();
        this.stream = region.device().newStream();
        this.buffers = new PinnedBuffer[staging.buffers()];
        this.views = new ByteBuffer[staging.buffers()];
        this.copied = new GpuEvent[staging.buffers()];
        try {
            for (int i = 0; i < buffers.length; i++) {
                buffers[i] = region.device().allocatePinned(staging.chunkBytes());
                views[i] = buffers[i].buffer();
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public void receive(SocketChannel ch, long offset, int length, Runnable landed) throws IOException {
        int chunks = staging.chunksOf(length);
        for (int i = 0; i < chunks; i++) {
            int slot = next;
            next = (next + 1) % buffers.length;
            reclaim(slot);
            ByteBuffer view = views[slot];
            int n = staging.chunkLength(length, i);
            view.clear().limit(n);
            while (view.hasRemaining()) {
                if (ch.read(view) < 0) {
                    throw new EOFException("peer closed the connection mid-transfer");
                }
            }
            stream.copyToDevice(buffers[slot], 0, region.memory(), offset + (long) i * staging.chunkBytes(), n);
            copied[slot] = stream.record();
            runLanded(false);
        }
        // the slot's event may be closed when the slot is reclaimed; the landing keeps an event of its own
        landings.add(new Landing(stream.record(), landed));
        runLanded(false);
    }

    /** Waits for the copy out of {@code slot}'s buffer, so the buffer can take new bytes. */
    private void reclaim(int slot) {
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

    /** Runs the callbacks of payloads whose copies are in; all of them (waiting) when {@code wait}. */
    private void runLanded(boolean wait) {
        while (!landings.isEmpty()) {
            Landing l = landings.peek();
            if (!wait && !l.lastCopy().isComplete()) {
                return;
            }
            landings.poll();
            try {
                l.lastCopy().await();
            } finally {
                l.lastCopy().close();
            }
            l.landed().run();
        }
    }

    @Override
    public void flush() {
        stream.synchronize();
        runLanded(true);
    }

    @Override
    public void close() {
        try {
            if (stream != null) {
                stream.close();
            }
            runLanded(true);
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
