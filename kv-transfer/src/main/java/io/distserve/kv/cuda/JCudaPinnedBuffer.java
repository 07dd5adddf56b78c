package io.distserve.kv.cuda;

import io.distserve.kv.device.PinnedBuffer;
import java.nio.ByteBuffer;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

/** Page-locked host memory from {@code cuMemHostAlloc}, freed by {@link #close()}. */
final class JCudaPinnedBuffer implements PinnedBuffer {

    private final JCudaGpuDevice device;
    private final int capacity;
    private final ByteBuffer view;
    private Pointer ptr;

    JCudaPinnedBuffer(JCudaGpuDevice device, int bytes) {
        if (bytes < 1) {
            throw new IllegalArgumentException("pinned buffer size must be >= 1, got " + bytes);
        }
        this.device = device;
        this.capacity = bytes;
        Pointer p = new Pointer();
        Driver.check(JCudaDriver.cuMemHostAlloc(p, bytes, 0), "cuMemHostAlloc(" + bytes + " bytes)");
        this.ptr = p;
        this.view = p.getByteBuffer(0, bytes);
    }

    synchronized Pointer at(int offset) {
        if (ptr == null) {
            throw new IllegalStateException("pinned buffer is closed");
        }
        return offset == 0 ? ptr : ptr.withByteOffset(offset);
    }

    @Override
    public ByteBuffer buffer() {
        return view.duplicate().clear();
    }

    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public synchronized void close() {
        if (ptr != null) {
            Pointer p = ptr;
            ptr = null;
            device.bind();
            Driver.check(JCudaDriver.cuMemFreeHost(p), "cuMemFreeHost");
        }
    }
}
