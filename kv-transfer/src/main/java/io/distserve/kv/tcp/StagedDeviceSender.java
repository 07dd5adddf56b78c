package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * Sends GPU memory over a socket through a {@link StagingRing}: the chunks of a transfer are copied device-to-host
 * on the ring's stream, up to the ring's size ahead of the socket, and each buffer is written once its copy's event
 * has completed and refilled right after. The socket never waits for the GPU except for a transfer's first chunk.
 */
final class StagedDeviceSender implements RegionSender {

    private final StagingRing ring;

    StagedDeviceSender(DeviceRegion region, StagingOptions staging) {
        this.ring = new StagingRing(region, staging);
    }

    @Override
    public void send(SocketChannel ch, ByteBuffer header, long offset, int length) throws IOException {
        ring.settleAll(); // a send cut short by a socket error may have left copies behind
        WireProtocol.writeFully(ch, header);
        int chunks = ring.options.chunksOf(length);
        for (int i = 0; i < Math.min(ring.size(), chunks); i++) {
            stage(offset, length, i);
        }
        for (int i = 0; i < chunks; i++) {
            int slot = i % ring.size();
            ring.settle(slot);
            WireProtocol.writeFully(ch, ring.view(slot, ring.options.chunkLength(length, i)));
            if (i + ring.size() < chunks) {
                stage(offset, length, i + ring.size());
            }
        }
    }

    private void stage(long offset, int length, int chunk) {
        int slot = chunk % ring.size();
        ring.stream.copyToHost(ring.region.memory(), offset + (long) chunk * ring.options.chunkBytes(),
                ring.buffer(slot), 0, ring.options.chunkLength(length, chunk));
        ring.copied(slot);
    }

    @Override
    public void close() {
        ring.close();
    }
}
