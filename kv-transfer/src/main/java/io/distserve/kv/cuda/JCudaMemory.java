package io.distserve.kv.cuda;

import io.distserve.kv.device.AllocatedMemory;
import io.distserve.kv.device.ImportedMemory;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

/**
 * Device memory behind a {@link CUdeviceptr}: the engine's KV pool (wrapped, never freed here), an allocation of
 * ours, or another process's allocation opened through CUDA IPC.
 */
final class JCudaMemory implements AllocatedMemory, ImportedMemory {

    enum Kind { WRAPPED, ALLOCATED, IMPORTED }

    private final JCudaGpuDevice device;
    private final Kind kind;
    private final long size;
    private CUdeviceptr ptr;

    JCudaMemory(JCudaGpuDevice device, Kind kind, CUdeviceptr ptr, long size) {
        this.device = device;
        this.kind = kind;
        this.ptr = ptr;
        this.size = size;
    }

    JCudaGpuDevice device() {
        return device;
    }

    @Override
    public long size() {
        return size;
    }

    synchronized CUdeviceptr at(long offset) {
        if (ptr == null) {
            throw new IllegalStateException("device memory is closed");
        }
        return offset == 0 ? ptr : ptr.withByteOffset(offset);
    }

    @Override
    public synchronized void close() {
        if (ptr == null) {
            return;
        }
        CUdeviceptr p = ptr;
        ptr = null;
        if (kind == Kind.WRAPPED) {
            return;
        }
        device.bind();
        if (kind == Kind.ALLOCATED) {
            Driver.check(JCudaDriver.cuMemFree(p), "cuMemFree");
        } else {
            Driver.check(JCudaDriver.cuIpcCloseMemHandle(p), "cuIpcCloseMemHandle");
        }
    }

    @Override
    public String toString() {
        return "JCudaMemory[" + kind + ", " + size + " bytes]";
    }
}
