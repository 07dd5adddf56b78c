package io.distserve.engine.cuda;

import java.util.HashMap;
import java.util.Map;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * A CUDA context on one device with the kernels' module loaded and one stream. Made current on the calling thread
 * by every operation (the engine calls from its own thread). Explicit lifecycle: {@link #close} unloads the module
 * and destroys the stream and the context; device buffers must be closed before.
 */
public final class CudaContext implements AutoCloseable {

    private final int ordinal;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final CUmodule module = new CUmodule();
    private final CUstream stream = new CUstream();
    private final Map<String, Kernel> kernels = new HashMap<>();
    private final String deviceName;
    private final int smCount;
    private final int maxSharedOptin;
    private final int ccMajor;
    private final int ccMinor;
    private final long fatbinCrc;
    private volatile String lastKernel = "(none)";
    /** cuLaunchKernelEx through JNA, bound on first use; null until then. */
    private ProgrammaticLaunch.Loaded programmatic;
    /** While true (a decode graph is being captured), kernels after the first are launched programmatically. */
    private boolean programmaticOn;
    private boolean kernelBefore;
    private boolean closed;

    CudaContext(int ordinal, byte[] fatbin) {
        this.ordinal = ordinal;
        java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        crc.update(fatbin);
        this.fatbinCrc = crc.getValue();
        Cuda.check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        byte[] name = new byte[256];
        Cuda.check(JCudaDriver.cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < name.length && name[len] != 0) {
            len++;
        }
        this.deviceName = new String(name, 0, len, java.nio.charset.StandardCharsets.US_ASCII);
        this.smCount = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.maxSharedOptin = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        this.ccMajor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        this.ccMinor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        Cuda.check(JCudaDriver.cuCtxCreate(context, 0, device), "cuCtxCreate(device " + ordinal + ")");
        try {
            int rc = JCudaDriver.cuModuleLoadData(module, fatbin);
            if (rc != 0) {
                throw new CudaException("cuModuleLoadData(distserve_kernels.fatbin, " + fatbin.length + " bytes) failed "
                        + "on " + deviceName + " (compute capability " + ccMajor + "." + ccMinor + "; the fatbin holds "
                        + "sm_90a code and compute_90 PTX): " + Cuda.describe(rc), rc);
            }
            Cuda.check(JCudaDriver.cuStreamCreate(stream, 0), "cuStreamCreate");
        } catch (RuntimeException e) {
            JCudaDriver.cuCtxDestroy(context);
            throw e;
        }
    }

    private int attribute(int attribute) {
        int[] v = new int[1];
        Cuda.check(JCudaDriver.cuDeviceGetAttribute(v, attribute, device), "cuDeviceGetAttribute(" + attribute + ")");
        return v[0];
    }

    void makeCurrent() {
        if (closed) {
            throw new IllegalStateException("CUDA context is closed");
        }
        Cuda.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    /** The kernel {@code name} of the fatbin (looked up once). */
    public synchronized Kernel kernel(String name) {
        Kernel k = kernels.get(name);
        if (k == null) {
            makeCurrent();
            CUfunction f = new CUfunction();
            Cuda.check(JCudaDriver.cuModuleGetFunction(f, module, name), "cuModuleGetFunction(" + name + ")");
            k = new Kernel(this, name, f);
            kernels.put(name, k);
        }
        return k;
    }

    public DeviceBuffer allocate(String name, long bytes) {
        makeCurrent();
        return new DeviceBuffer(this, name, bytes);
    }

    void free(CUdeviceptr p, String name) {
        if (!closed) {
            makeCurrent();
            Cuda.check(JCudaDriver.cuMemFree(p), "cuMemFree(" + name + ")");
        }
    }

    /** {free, total} device memory in bytes. */
    public long[] memoryInfo() {
        makeCurrent();
        long[] free = new long[1];
        long[] total = new long[1];
        Cuda.check(JCudaDriver.cuMemGetInfo(free, total), "cuMemGetInfo");
        return new long[] {free[0], total[0]};
    }

    /** Waits for the stream; an asynchronous kernel fault surfaces here, naming the last kernel launched. */
    public void synchronize() {
        makeCurrent();
        int rc = JCudaDriver.cuStreamSynchronize(stream);
        if (rc != 0) {
            throw new CudaException("cuStreamSynchronize failed after kernel " + lastKernel + ": " + Cuda.describe(rc),
                    rc);
        }
    }

    void lastKernel(String name) {
        lastKernel = name;
    }

    /**
     * Whether programmatic dependent launches can be made here: null when they can, else why not (JNA or the
     * driver's cuLaunchKernelEx missing, a device older than compute capability 9.0, or
     * off unless {@code -Ddistserve.cuda.pdl=true}).
     */
    synchronized String programmaticUnavailableReason() {
        if (!Boolean.parseBoolean(System.getProperty("distserve.cuda.pdl", "false"))) {
            return "off by default: no gain measured on an H100 (gpu-engine/CUDA_NOTES.md section 11); "
                    + "-Ddistserve.cuda.pdl=true turns it on";
        }
        if (ccMajor < 9) {
            return "needs compute capability 9.0, the device is " + computeCapability();
        }
        if (programmatic == null) {
            programmatic = ProgrammaticLaunch.load();
        }
        return programmatic.unavailableReason();
    }

    /**
     * From now on (until {@code programmaticLaunches(false)}), every kernel launched after another one is launched
     * with programmatic stream serialization (the first is not: it has no kernel to overlap). Used around decode-
     * graph captures only. @return whether it is on (false when {@link #programmaticUnavailableReason} says why not)
     */
    synchronized boolean programmaticLaunches(boolean on) {
        programmaticOn = on && programmaticUnavailableReason() == null;
        kernelBefore = false;
        return programmaticOn;
    }

    /** The launcher for the next kernel launch, or null for a plain cuLaunchKernel. */
    synchronized ProgrammaticLaunch programmaticLauncher() {
        if (programmaticOn && kernelBefore) {
            return programmatic.launcher();
        }
        kernelBefore = true;
        return null;
    }

    /** The context itself, for the KV-transfer layer's threads (they make it current to reach the KV pool). */
    CUcontext context() {
        return context;
    }

    CUstream stream() {
        return stream;
    }

    /** Milliseconds the device spends on {@code work} (events around it, then a synchronize). */
    public float timeMillis(Runnable work) {
        makeCurrent();
        CUevent start = new CUevent();
        CUevent stop = new CUevent();
        Cuda.check(JCudaDriver.cuEventCreate(start, 0), "cuEventCreate");
        Cuda.check(JCudaDriver.cuEventCreate(stop, 0), "cuEventCreate");
        try {
            Cuda.check(JCudaDriver.cuEventRecord(start, stream), "cuEventRecord");
            work.run();
            Cuda.check(JCudaDriver.cuEventRecord(stop, stream), "cuEventRecord");
            int rc = JCudaDriver.cuEventSynchronize(stop);
            if (rc != 0) {
                throw new CudaException("cuEventSynchronize failed after kernel " + lastKernel + ": "
                        + Cuda.describe(rc), rc);
            }
            float[] ms = new float[1];
            Cuda.check(JCudaDriver.cuEventElapsedTime(ms, start, stop), "cuEventElapsedTime");
            return ms[0];
        } finally {
            JCudaDriver.cuEventDestroy(start);
            JCudaDriver.cuEventDestroy(stop);
        }
    }

    /** CRC-32 of the loaded kernels: which build of them this is (the tuning cache is per build). */
    long fatbinCrc() {
        return fatbinCrc;
    }

    public String deviceName() {
        return deviceName;
    }

    public int ordinal() {
        return ordinal;
    }

    public int smCount() {
        return smCount;
    }

    public int maxSharedPerBlockOptin() {
        return maxSharedOptin;
    }

    public String computeCapability() {
        return ccMajor + "." + ccMinor;
    }

    /** True on compute capability 9.0 (H100, H200): the fatbin's sm_90a code, wgmma included, runs there. */
    public boolean isSm90() {
        return ccMajor == 9 && ccMinor == 0;
    }

    /** Unloads the module, destroys the stream and the context. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        makeCurrent();
        JCudaDriver.cuStreamSynchronize(stream);
        JCudaDriver.cuStreamDestroy(stream);
        JCudaDriver.cuModuleUnload(module);
        closed = true;
        JCudaDriver.cuCtxDestroy(context);
    }
}
