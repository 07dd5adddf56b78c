package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.MemoryRegion;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * The pulling side's way of landing payload bytes in the local region: straight into host memory, or staged into
 * GPU memory. One per stream reader thread (a device receiver binds the GPU context to it).
 *
 * <p>A payload has landed only when its bytes are in the region. For host memory that is when the socket read
 * returns; for GPU memory, when the last host-to-device copy of it has run, which may be after {@link #receive}
 * returned: the callback then runs from a later {@code receive} or from {@link #flush()}.
 */
interface RegionReceiver extends AutoCloseable {

    /**
     * Reads {@code length} bytes from {@code ch} into the region at {@code offset} (bounds-checked by the caller's
     * plan); runs {@code landed} once they are in.
     */
    void receive(SocketChannel ch, long offset, int length, Runnable landed) throws IOException;

    /** Waits for every copy still in flight and runs its callback: afterwards no byte can land any more. */
    void flush();

    /** Flushes, then frees what the receiver holds. */
    @Override
    void close();

    static RegionReceiver forRegion(MemoryRegion region, StagingOptions staging) {
        if (region instanceof DeviceRegion device) {
            return new StagedDeviceReceiver(device, staging);
        }
        return new HostReceiver(region);
    }

    /** Host memory: the kernel copies from the socket straight into a slice of the region. */
    final class HostReceiver implements RegionReceiver {
        private final MemoryRegion region;

        HostReceiver(MemoryRegion region) {
            this.region = region;
        }

        @Override
        public void receive(SocketChannel ch, long offset, int length, Runnable landed) throws IOException {
            ByteBuffer dst = region.slice(offset, length);
            while (dst.hasRemaining()) {
                if (ch.read(dst) < 0) {
                    throw new EOFException("peer closed the connection mid-transfer");
                }
            }
            landed.run();
        }

        @Override
        public void flush() {
            // every receive has landed when it returns
        }

        @Override
        public void close() {
            // nothing held
        }
    }
}
