package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.MemoryRegion;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * The serving side's way of putting region bytes on a socket: straight from host memory, or staged out of GPU
 * memory. One per serving thread (a device sender binds the GPU context to it).
 */
interface RegionSender extends AutoCloseable {

    /** Writes {@code header}, then the region's [offset, offset + length), which the caller has bounds-checked. */
    void send(SocketChannel ch, ByteBuffer header, long offset, int length) throws IOException;

    /** Frees what the sender holds (pinned buffers, its stream). */
    @Override
    void close();

    static RegionSender forRegion(MemoryRegion region, StagingOptions staging) {
        if (region instanceof DeviceRegion device) {
            return new StagedDeviceSender(device, staging);
        }
        return new HostSender(region);
    }

    /** Host memory: one gathering write of {header, slice}; the kernel copies from the region, the JVM never does. */
    final class HostSender implements RegionSender {
        private final MemoryRegion region;
        private final ByteBuffer[] pair = new ByteBuffer[2];

        HostSender(MemoryRegion region) {
            this.region = region;
        }

        @Override
        public void send(SocketChannel ch, ByteBuffer header, long offset, int length) throws IOException {
            ByteBuffer data = region.slice(offset, length);
            pair[0] = header;
            pair[1] = data;
            while (data.hasRemaining()) {
                ch.write(pair);
            }
        }

        @Override
        public void close() {
            // nothing held
        }
    }
}
