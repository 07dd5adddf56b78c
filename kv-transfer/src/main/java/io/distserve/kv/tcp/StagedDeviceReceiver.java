package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;

/**
 * Lands socket bytes in GPU memory through a {@link StagingRing}: each chunk is read from the socket into a free
 * buffer and copied host-to-device on the ring's stream while the next chunk is read. A buffer is reused only once
 * its copy has run. A payload's callback runs when an event recorded after its last chunk has (the stream runs in
 * order, so every earlier chunk is in too), without holding the socket for it: pending payloads are checked at each
 * chunk, and the reader flushes when it has nothing else queued.
 */
final class StagedDeviceReceiver implements RegionReceiver {

    private record Landing(GpuEvent lastCopy, Runnable landed) {
    }

    private final StagingRing ring;
    private final ArrayDeque<Landing> landings = new ArrayDeque<>();
    private int next;

    StagedDeviceReceiver(DeviceRegion region, StagingOptions staging) {
        this.ring = new StagingRing(region, staging);
    }

    @Override
    public void receive(SocketChannel ch, long offset, int length, Runnable landed) throws IOException {
        int chunks = ring.options.chunksOf(length);
        for (int i = 0; i < chunks; i++) {
            int slot = next;
            next = (next + 1) % ring.size();
            ring.settle(slot);
            int n = ring.options.chunkLength(length, i);
            ByteBuffer view = ring.view(slot, n);
            while (view.hasRemaining()) {
                if (ch.read(view) < 0) {
                    throw new EOFException("peer closed the connection mid-transfer");
                }
            }
            ring.stream.copyToDevice(ring.buffer(slot), 0, ring.region.memory(),
                    offset + (long) i * ring.options.chunkBytes(), n);
            ring.copied(slot);
            runLanded(false);
        }
        // the slots' events are closed as slots are reused; the landing keeps an event of its own
        landings.add(new Landing(ring.stream.record(), landed));
        runLanded(false);
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
        ring.stream.synchronize();
        runLanded(true);
    }

    @Override
    public void close() {
        try {
            ring.close();
        } finally {
            runLanded(true);
        }
    }
}
