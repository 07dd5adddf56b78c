package io.distserve.processors.disagg;

import io.distserve.engine.ComputeBackend;
import io.distserve.engine.cuda.DeviceKvPool;
import io.distserve.kv.cuda.JCudaGpuDevice;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.MemoryRegion;
import java.util.List;
import java.util.Optional;

/**
 * A backend's KV pool as the transfer layer sees it: host chunks (CPU backend) as a {@link ByteBufferRegion}, the
 * CUDA backend's one device allocation as a {@link DeviceRegion} on the engine's own CUDA context. {@link #close()}
 * frees what the transfer layer loaded into that context, never the pool (the engine owns it).
 */
public final class KvPool implements AutoCloseable {

    private final MemoryRegion region;
    private final AutoCloseable device;

    private KvPool(MemoryRegion region, AutoCloseable device) {
        this.region = region;
        this.device = device;
    }

    public static KvPool of(ComputeBackend backend) {
        Optional<DeviceKvPool> onDevice = backend.deviceKvPool();
        if (onDevice.isPresent()) {
            DeviceKvPool p = onDevice.get();
            JCudaGpuDevice device = JCudaGpuDevice.onContext(p.context());
            return new KvPool(new DeviceRegion(device, device.wrap(p.base(), p.bytes())), device);
        }
        List<java.nio.ByteBuffer> chunks = backend.hostKvChunks();
        if (chunks.isEmpty()) {
            throw new IllegalStateException("backend " + backend.name() + " exposes its KV pool neither in host "
                    + "memory nor as device memory; it cannot migrate KV");
        }
        return new KvPool(new ByteBufferRegion(chunks), null);
    }

    /** A region of the caller's (tests: a device double's region). */
    public static KvPool of(MemoryRegion region) {
        return new KvPool(region, null);
    }

    public MemoryRegion region() {
        return region;
    }

    @Override
    public void close() {
        if (device != null) {
            try {
                device.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing the transfer layer's CUDA state failed: " + e, e);
            }
        }
    }
}
