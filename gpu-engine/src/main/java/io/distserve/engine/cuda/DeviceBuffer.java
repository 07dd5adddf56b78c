package io.distserve.engine.cuda;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

/**
 * Device memory from {@code cuMemAlloc}, freed by {@link #close} (idempotent). Copies are synchronous on the
 * context's stream order (the legacy default stream), checked, and bounds-checked against the allocation.
 */
public final class DeviceBuffer implements AutoCloseable {

    private final CudaContext context;
    private final String name;
    private final long bytes;
    private CUdeviceptr ptr;

    DeviceBuffer(CudaContext context, String name, long bytes) {
        if (bytes < 1) {
            throw new IllegalArgumentException("device buffer " + name + ": size must be >= 1, got " + bytes);
        }
        this.context = context;
        this.name = name;
        this.bytes = bytes;
        CUdeviceptr p = new CUdeviceptr();
        Cuda.check(JCudaDriver.cuMemAlloc(p, bytes), "cuMemAlloc(" + name + ", " + bytes + " bytes)");
        this.ptr = p;
    }

    public String name() {
        return name;
    }

    public long bytes() {
        return bytes;
    }

    /** The base pointer, for kernel arguments. */
    public CUdeviceptr ptr() {
        if (ptr == null) {
            throw new IllegalStateException("device buffer " + name + " is closed");
        }
        return ptr;
    }

    /** A pointer {@code offset} bytes in. */
    public CUdeviceptr at(long offset) {
        check(offset, 0);
        return ptr().withByteOffset(offset);
    }

    private void check(long offset, long len) {
        if (offset < 0 || len < 0 || offset + len > bytes) {
            throw new IndexOutOfBoundsException("device buffer " + name + " of " + bytes + " bytes: range ["
                    + offset + ", " + (offset + len) + ")");
        }
    }

    public void upload(long offset, Pointer host, long len) {
        check(offset, len);
        context.makeCurrent();
        Cuda.check(JCudaDriver.cuMemcpyHtoD(ptr().withByteOffset(offset), host, len), "cuMemcpyHtoD(" + name + ")");
    }

    public void upload(int[] data) {
        upload(0, Pointer.to(data), 4L * data.length);
    }

    public void upload(float[] data) {
        upload(0, Pointer.to(data), 4L * data.length);
    }

    public void upload(short[] data) {
        upload(0, Pointer.to(data), 2L * data.length);
    }

    public void download(long offset, Pointer host, long len) {
        check(offset, len);
        context.makeCurrent();
        Cuda.check(JCudaDriver.cuMemcpyDtoH(host, ptr().withByteOffset(offset), len), "cuMemcpyDtoH(" + name + ")");
    }

    public float[] downloadFloats(int count) {
        float[] out = new float[count];
        download(0, Pointer.to(out), 4L * count);
        return out;
    }

    public short[] downloadShorts(long offset, int count) {
        short[] out = new short[count];
        download(offset, Pointer.to(out), 2L * count);
        return out;
    }

    public int[] downloadInts(int count) {
        int[] out = new int[count];
        download(0, Pointer.to(out), 4L * count);
        return out;
    }

    /** Fills every 32-bit word with {@code word} (e.g. a NaN pattern before a check). */
    public void fill32(int word) {
        if (bytes % 4 != 0) {
            throw new IllegalStateException("device buffer " + name + ": " + bytes + " bytes is not whole words");
        }
        context.makeCurrent();
        Cuda.check(JCudaDriver.cuMemsetD32(ptr(), word, bytes / 4), "cuMemsetD32(" + name + ")");
    }

    /** Fills every 16-bit word with {@code half} (bf16 buffers may hold an odd number of elements). */
    public void fill16(short half) {
        if (bytes % 2 != 0) {
            throw new IllegalStateException("device buffer " + name + ": " + bytes + " bytes is not whole 16-bit words");
        }
        context.makeCurrent();
        Cuda.check(JCudaDriver.cuMemsetD16(ptr(), half, bytes / 2), "cuMemsetD16(" + name + ")");
    }

    @Override
    public void close() {
        if (ptr != null) {
            CUdeviceptr p = ptr;
            ptr = null;
            context.free(p, name);
        }
    }

    @Override
    public String toString() {
        return "DeviceBuffer[" + name + ", " + bytes + " bytes]";
    }
}
