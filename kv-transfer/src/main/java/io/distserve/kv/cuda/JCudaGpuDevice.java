package io.distserve.kv.cuda;

import io.distserve.kv.device.AllocatedMemory;
import io.distserve.kv.device.DeviceException;
import io.distserve.kv.device.DeviceMemory;
import io.distserve.kv.device.GpuDevice;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.ImportedMemory;
import io.distserve.kv.device.IpcExport;
import io.distserve.kv.device.PinnedBuffer;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUipcMemHandle;
import jcuda.driver.CUipcMem_flags;
import jcuda.driver.CUmodule;
import jcuda.driver.CUpointer_attribute;
import jcuda.driver.JCudaDriver;

/**
 * {@link GpuDevice} over JCuda's driver API, on a context the engine made (its KV pool lives there) or, for the
 * benchmarks, on one of its own. The gather kernel comes from this module's fatbin
 * ({@value #FATBIN}, compiled by nvcc at build time from src/main/cuda), loaded into the context on first use.
 */
public final class JCudaGpuDevice implements GpuDevice {

    /** Classpath resource of this module's kernels. */
    public static final String FATBIN = "/cuda/kv_transfer_kernels.fatbin";

    /** CUipcMemHandle keeps its 64 bytes in a private array that JCuda's native code reads and writes. */
    private static final Field HANDLE_BYTES = handleField();

    private final CUcontext context;
    private final boolean ownsContext;
    private final String pciBusId;
    private final int smCount;
    private CUmodule module; // guarded by this
    private final java.util.Map<String, CUfunction> kernels = new java.util.HashMap<>(); // guarded by this
    private boolean closed; // guarded by this

    private JCudaGpuDevice(CUcontext context, boolean ownsContext) {
        this.context = context;
        this.ownsContext = ownsContext;
        bind();
        CUdevice dev = new CUdevice();
        Driver.check(JCudaDriver.cuCtxGetDevice(dev), "cuCtxGetDevice");
        String[] bus = new String[1];
        Driver.check(JCudaDriver.cuDeviceGetPCIBusId(bus, 32, dev), "cuDeviceGetPCIBusId");
        this.pciBusId = bus[0] == null ? "" : bus[0].trim().toLowerCase(java.util.Locale.ROOT);
        int[] sms = new int[1];
        Driver.check(JCudaDriver.cuDeviceGetAttribute(sms, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                dev), "cuDeviceGetAttribute(SM count)");
        this.smCount = sms[0];
    }

    /** The device of an engine's context; closing it leaves the context alone. */
    public static JCudaGpuDevice onContext(CUcontext context) {
        return new JCudaGpuDevice(context, false);
    }

    /**
     * A context of its own on device {@code ordinal} (benchmarks, GPU tests); closing the device destroys it.
     *
     * @throws IllegalStateException when CUDA is unavailable here (the reason in one line)
     */
    public static JCudaGpuDevice open(int ordinal) {
        String why = CudaAvailability.unavailableReason();
        if (why != null) {
            throw new IllegalStateException(why);
        }
        CUdevice dev = new CUdevice();
        Driver.check(JCudaDriver.cuDeviceGet(dev, ordinal), "cuDeviceGet(" + ordinal + ")");
        CUcontext ctx = new CUcontext();
        Driver.check(JCudaDriver.cuCtxCreate(ctx, 0, dev), "cuCtxCreate(device " + ordinal + ")");
        return new JCudaGpuDevice(ctx, true);
    }

    /** Memory the engine allocated (its KV pool), wrapped: this device never frees it. */
    public DeviceMemory wrap(CUdeviceptr ptr, long bytes) {
        if (ptr == null || bytes < 1) {
            throw new IllegalArgumentException("wrap needs a pointer and a positive size");
        }
        return new JCudaMemory(this, JCudaMemory.Kind.WRAPPED, ptr, bytes);
    }

    @Override
    public String pciBusId() {
        return pciBusId;
    }

    int smCount() {
        return smCount;
    }

    @Override
    public void bind() {
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    @Override
    public GpuStream newStream() {
        return new JCudaStream(this);
    }

    @Override
    public PinnedBuffer allocatePinned(int bytes) {
        bind();
        return new JCudaPinnedBuffer(this, bytes);
    }

    @Override
    public AllocatedMemory allocate(long bytes) {
        bind();
        CUdeviceptr p = new CUdeviceptr();
        Driver.check(JCudaDriver.cuMemAlloc(p, bytes), "cuMemAlloc(" + bytes + " bytes)");
        return new JCudaMemory(this, JCudaMemory.Kind.ALLOCATED, p, bytes);
    }

    @Override
    public IpcExport exportIpc(DeviceMemory memory) {
        if (!(memory instanceof JCudaMemory m) || m.device() != this) {
            throw new IllegalArgumentException(memory + " is not memory of this device");
        }
        bind();
        CUipcMemHandle handle = new CUipcMemHandle();
        Driver.check(JCudaDriver.cuIpcGetMemHandle(handle, m.at(0)), "cuIpcGetMemHandle");
        CUdeviceptr base = new CUdeviceptr();
        long[] size = new long[1];
        Driver.check(JCudaDriver.cuMemGetAddressRange(base, size, m.at(0)), "cuMemGetAddressRange");
        long offset = address(m.at(0)) - address(base);
        if (offset < 0 || offset + memory.size() > size[0]) {
            throw new DeviceException("memory of " + memory.size() + " bytes at offset " + offset
                    + " does not fit its allocation of " + size[0] + " bytes", -1);
        }
        return new IpcExport(handleBytes(handle), offset);
    }

    @Override
    public ImportedMemory openIpc(byte[] handleBytes) {
        if (handleBytes == null || handleBytes.length != IpcExport.HANDLE_BYTES) {
            throw new IllegalArgumentException("a CUDA IPC handle has " + IpcExport.HANDLE_BYTES + " bytes");
        }
        bind();
        CUipcMemHandle handle = new CUipcMemHandle();
        setHandleBytes(handle, handleBytes);
        CUdeviceptr p = new CUdeviceptr();
        Driver.check(JCudaDriver.cuIpcOpenMemHandle(p, handle, CUipcMem_flags.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS),
                "cuIpcOpenMemHandle");
        long[] size = new long[1];
        int rc = JCudaDriver.cuMemGetAddressRange(new CUdeviceptr(), size, p);
        if (rc != 0) {
            JCudaDriver.cuIpcCloseMemHandle(p);
            Driver.check(rc, "cuMemGetAddressRange(imported)");
        }
        return new JCudaMemory(this, JCudaMemory.Kind.IMPORTED, p, size[0]);
    }

    @Override
    public long gpuDirectAddress(DeviceMemory memory) {
        if (!(memory instanceof JCudaMemory m) || m.device() != this) {
            throw new IllegalArgumentException(memory + " is not memory of this device");
        }
        bind();
        Driver.check(JCudaDriver.cuPointerSetAttribute(Pointer.to(new int[] {1}),
                CUpointer_attribute.CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, m.at(0)), "cuPointerSetAttribute(SYNC_MEMOPS)");
        return address(m.at(0));
    }

    /** A kernel of this module's fatbin ({@code kv_gather}, ...), the module loaded on first use. */
    synchronized CUfunction kernel(String name) {
        if (closed) {
            throw new IllegalStateException("device is closed");
        }
        if (module == null) {
            CUmodule m = new CUmodule();
            Driver.check(JCudaDriver.cuModuleLoadData(m, readFatbin()), "cuModuleLoadData(kv_transfer_kernels.fatbin)");
            module = m;
        }
        CUfunction f = kernels.get(name);
        if (f == null) {
            f = new CUfunction();
            Driver.check(JCudaDriver.cuModuleGetFunction(f, module, name), "cuModuleGetFunction(" + name + ")");
            kernels.put(name, f);
        }
        return f;
    }

    static byte[] readFatbin() {
        try (InputStream in = JCudaGpuDevice.class.getResourceAsStream(FATBIN)) {
            if (in == null) {
                throw new IllegalStateException("no " + FATBIN + " on the classpath (built without nvcc)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + FATBIN + ": " + e.getMessage(), e);
        }
    }

    private static long address(CUdeviceptr p) {
        long[] v = new long[1];
        Driver.check(JCudaDriver.cuPointerGetAttribute(Pointer.to(v),
                CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_POINTER, p), "cuPointerGetAttribute(DEVICE_POINTER)");
        return v[0];
    }

    private static Field handleField() {
        try {
            Field f = CUipcMemHandle.class.getDeclaredField("reserved");
            f.setAccessible(true);
            return f;
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new ExceptionInInitializerError("JCuda's CUipcMemHandle has no accessible 'reserved' bytes: " + e);
        }
    }

    private static byte[] handleBytes(CUipcMemHandle h) {
        try {
            return ((byte[]) HANDLE_BYTES.get(h)).clone();
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void setHandleBytes(CUipcMemHandle h, byte[] bytes) {
        try {
            HANDLE_BYTES.set(h, bytes.clone());
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        bind();
        if (module != null) {
            JCudaDriver.cuModuleUnload(module);
            module = null;
            kernels.clear();
        }
        if (ownsContext) {
            JCudaDriver.cuCtxDestroy(context);
        }
    }

    @Override
    public String toString() {
        return "JCudaGpuDevice[" + pciBusId + ", " + smCount + " SMs]";
    }
}
