package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.PinnedBuffer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * Sends GPU memory over a socket through a ring of pinned buffers: the chunks of a transfer are copied
 * device-to-host on a stream of its own, up to {@link StagingOptions#buffers()} ahead of the socket, and each
 * buffer is written once its copy's event has completed and refilled right after. The socket never waits for the
 * GPU except for a transfer's first chunk.
 */
final class StagedDeviceSender implements RegionSender {

    private final DeviceRegion region;
    private final StagingOptions staging;
    private final GpuStream stream;
    private final PinnedBuffer[] buffers;
    private final ByteBuffer[] views;
    private final GpuEvent[] copied;

    StagedDeviceSender(DeviceRegion region, StagingOptions staging) {
        this.region = region;
        this.staging = staging;
        region.device().bind(); // this thread talks to the GPU from now on
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
    public void send(SocketChannel ch, ByteBuffer header, long offset, int length) throws IOException {
        settleAll(); // a send cut short by a socket error may have left copies behind
        WireProtocol.writeFully(ch, header);
        int chunks = staging.chunksOf(length);
        for (int i = 0; i < Math.min(buffers.length, chunks); i++) {
            stage(offset, length, i);
        }
        for (int i = 0; i < chunks; i++) {
            int slot = i % buffers.length;
            settle(slot);
            ByteBuffer view = views[slot];
            view.clear().limit(staging.chunkLength(length, i));
            WireProtocol.writeFully(ch, view);
            if (i + buffers.length < chunks) {
                stage(offset, length, i + buffers.length);
            }
        }
    }

    private void stage(long offset, int length, int chunk) {
        int slot = chunk % buffers.length;
        stream.copyToHost(region.memory(), offset + (long) chunk * staging.chunkBytes(), buffers[slot], 0,
                staging.chunkLength(length, chunk));
        copied[slot] = stream.record();
    }

    private void settle(int slot) {
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

    private void settleAll() {
        for (int i = 0; i < copied.length; i++) {
            settle(i);
        }
    }

    @Override
    public void close() {
        try {
            stream.close(); // waits for copies in flight, so the buffers are free to go
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
