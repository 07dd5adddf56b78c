package io.distserve.kv.device;

import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.RegionLayout;
import java.nio.ByteBuffer;

/**
 * A KV pool in GPU memory: one device allocation, one segment. The host cannot address it, so a transport either
 * copies it on the device ({@code nvlink}) or stages it through pinned host buffers ({@code tcp}), with the
 * {@link #device()} that owns it.
 */
public final class DeviceRegion implements MemoryRegion {

    private final GpuDevice device;
    private final DeviceMemory memory;
    private final RegionLayout layout;

    public DeviceRegion(GpuDevice device, DeviceMemory memory) {
        if (device == null || memory == null) {
            throw new IllegalArgumentException("a device region needs its device and its memory");
        }
        this.device = device;
        this.memory = memory;
        this.layout = RegionLayout.single(memory.size());
    }

    public GpuDevice device() {
        return device;
    }

    public DeviceMemory memory() {
        return memory;
    }

    @Override
    public RegionLayout layout() {
        return layout;
    }

    @Override
    public boolean isHostAccessible() {
        return false;
    }

    @Override
    public ByteBuffer slice(long offset, int length) {
        throw new UnsupportedOperationException("device memory is not host accessible; stage it through a "
                + "GpuStream");
    }

    @Override
    public String toString() {
        return "DeviceRegion[size=" + size() + ", device " + device.pciBusId() + "]";
    }
}
