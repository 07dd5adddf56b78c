package io.distserve.kv.cuda;

import io.distserve.kv.device.CopyRuns;
import io.distserve.kv.device.DeviceMemory;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.PinnedBuffer;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/**
 * A non-blocking CUDA stream: it does not wait for the legacy default stream, so transfers overlap the engine's
 * compute. The gather's run table goes up through a pinned buffer of the stream's own, reused once the previous
 * upload from it has run.
 */
final class JCudaStream implements GpuStream {

    /** Threads per gather block: 256 threads x 8 16-byte loads in flight = 32 KiB in flight per block. */
    private static final int GATHER_THREADS = 256;
    /** Blocks per SM: one wave (the kernel's launch bounds), each with an equal share of the pieces (GatherSweep). */
    private static final int GATHER_BLOCKS_PER_SM = 4;

    private final JCudaGpuDevice device;
    private final CUstream stream = new CUstream();
    private JCudaPinnedBuffer runsHost;
    private CUdeviceptr runsDevice;
    private long runsCapacity;
    private GpuEvent runsUploaded;
    private boolean closed;

    JCudaStream(JCudaGpuDevice device) {
        this.device = device;
        device.bind();
        Driver.check(JCudaDriver.cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    }

    private static JCudaMemory mem(DeviceMemory m) {
        if (m instanceof JCudaMemory j) {
            return j;
        }
        throw new IllegalArgumentException(m + " is not CUDA device memory");
    }

    private static JCudaPinnedBuffer pinned(PinnedBuffer b) {
        if (b instanceof JCudaPinnedBuffer j) {
            return j;
        }
        throw new IllegalArgumentException(b + " is not a CUDA pinned buffer");
    }

    private static void checkRange(String what, long offset, long bytes, long size) {
        if (offset < 0 || bytes < 0 || offset > size - bytes) {
            throw new IndexOutOfBoundsException(what + " range [" + offset + ", " + (offset + bytes) + ") outside [0, "
                    + size + ")");
        }
    }

    @Override
    public void copyToHost(DeviceMemory src, long srcOffset, PinnedBuffer dst, int dstOffset, int bytes) {
        checkRange("device source", srcOffset, bytes, src.size());
        checkRange("pinned destination", dstOffset, bytes, dst.capacity());
        Driver.check(JCudaDriver.cuMemcpyDtoHAsync(pinned(dst).at(dstOffset), mem(src).at(srcOffset), bytes, stream),
                "cuMemcpyDtoHAsync(" + bytes + " bytes)");
    }

    @Override
    public void copyToDevice(PinnedBuffer src, int srcOffset, DeviceMemory dst, long dstOffset, int bytes) {
        checkRange("pinned source", srcOffset, bytes, src.capacity());
        checkRange("device destination", dstOffset, bytes, dst.size());
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(mem(dst).at(dstOffset), pinned(src).at(srcOffset), bytes, stream),
                "cuMemcpyHtoDAsync(" + bytes + " bytes)");
    }

    @Override
    public void copy(DeviceMemory src, long srcOffset, DeviceMemory dst, long dstOffset, long bytes) {
        checkRange("device source", srcOffset, bytes, src.size());
        checkRange("device destination", dstOffset, bytes, dst.size());
        Driver.check(JCudaDriver.cuMemcpyDtoDAsync(mem(dst).at(dstOffset), mem(src).at(srcOffset), bytes, stream),
                "cuMemcpyDtoDAsync(" + bytes + " bytes)");
    }

    @Override
    public void gather(DeviceMemory src, DeviceMemory dst, CopyRuns runs) {
        gather(src, dst, runs, "kv_gather", GATHER_BLOCKS_PER_SM);
    }

    /** The gather with another kernel of the module or grid (the benchmark's sweep, GatherSweep). */
    void gather(DeviceMemory src, DeviceMemory dst, CopyRuns runs, String kernel, int blocksPerSm) {
        if (runs.count() == 0) {
            return;
        }
        if (runs.srcEnd() > src.size() || runs.dstEnd() > dst.size()) {
            throw new IndexOutOfBoundsException(runs + " reaches byte " + runs.srcEnd() + " of a " + src.size()
                    + "-byte source / " + runs.dstEnd() + " of a " + dst.size() + "-byte destination");
        }
        long[] table = runs.encoded();
        long bytes = 8L * table.length;
        ensureRunsCapacity(bytes);
        if (runsUploaded != null) {
            runsUploaded.await(); // the previous table may not have left the pinned buffer yet
            runsUploaded.close();
            runsUploaded = null;
        }
        runsHost.buffer().order(java.nio.ByteOrder.nativeOrder()).asLongBuffer().put(table);
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(runsDevice, runsHost.at(0), bytes, stream),
                "cuMemcpyHtoDAsync(gather runs)");
        runsUploaded = record();
        long grid = Math.min(runs.pieces(), (long) device.smCount() * blocksPerSm);
        Pointer params = Pointer.to(Pointer.to(mem(src).at(0)), Pointer.to(mem(dst).at(0)), Pointer.to(runsDevice),
                Pointer.to(new int[] {runs.count()}), Pointer.to(new long[] {runs.pieceBytes()}),
                Pointer.to(new long[] {runs.pieces()}));
        Driver.check(JCudaDriver.cuLaunchKernel(device.kernel(kernel), (int) grid, 1, 1, GATHER_THREADS, 1, 1, 0,
                stream, params, null), "cuLaunchKernel(" + kernel + ", " + grid + " blocks, " + runs + ")");
    }

    private void ensureRunsCapacity(long bytes) {
        if (bytes <= runsCapacity) {
            return;
        }
        long cap = Math.max(bytes, Math.max(4096, runsCapacity * 2));
        if (runsDevice != null) {
            synchronize(); // the old table may still be read by a gather in flight
            Driver.check(JCudaDriver.cuMemFree(runsDevice), "cuMemFree(gather runs)");
            runsDevice = null;
            runsHost.close();
            runsHost = null;
            runsCapacity = 0;
        }
        if (runsUploaded != null) {
            runsUploaded.close();
            runsUploaded = null;
        }
        CUdeviceptr d = new CUdeviceptr();
        Driver.check(JCudaDriver.cuMemAlloc(d, cap), "cuMemAlloc(gather runs, " + cap + " bytes)");
        runsDevice = d;
        runsHost = new JCudaPinnedBuffer(device, (int) cap);
        runsCapacity = cap;
    }

    @Override
    public GpuEvent record() {
        return new JCudaEvent(stream);
    }

    @Override
    public void synchronize() {
        Driver.check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.bind();
        JCudaDriver.cuStreamSynchronize(stream);
        if (runsUploaded != null) {
            runsUploaded.close();
        }
        if (runsDevice != null) {
            JCudaDriver.cuMemFree(runsDevice);
            runsHost.close();
        }
        JCudaDriver.cuStreamDestroy(stream);
    }
}
