package io.distserve.engine.cuda;

import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.JCudaDriver;

/**
 * One {@code extern "C"} kernel of the fatbin. Arguments are typed Java values: {@link DeviceBuffer} or
 * {@link CUdeviceptr} (a device pointer; {@code null} passes a null pointer), {@link Integer}, {@link Float},
 * {@link Long}. A failed launch throws a {@link CudaException} naming the kernel; with
 * {@code -Ddistserve.cuda.sync=true} every launch is followed by a synchronize, so that an asynchronous fault is
 * attributed to the kernel that caused it.
 */
public final class Kernel {

    private static final boolean SYNC_EACH = Boolean.getBoolean("distserve.cuda.sync");

    private final CudaContext context;
    private final String name;
    private final CUfunction function;
    private int maxDynamicShared = 48 * 1024;

    Kernel(CudaContext context, String name, CUfunction function) {
        this.context = context;
        this.name = name;
        this.function = function;
    }

    public String name() {
        return name;
    }

    public int attribute(int attribute) {
        int[] v = new int[1];
        Cuda.check(JCudaDriver.cuFuncGetAttribute(v, attribute, function), "cuFuncGetAttribute(" + name + ")");
        return v[0];
    }

    /** Sets a function attribute (cuFuncSetAttribute), e.g. the preferred shared-memory carveout. */
    void setAttribute(int attribute, int value) {
        context.makeCurrent();
        Cuda.check(JCudaDriver.cuFuncSetAttribute(function, attribute, value),
                "cuFuncSetAttribute(" + name + ", " + attribute + ", " + value + ")");
    }

    /** Registers per thread, as compiled. */
    public int registers() {
        return attribute(CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS);
    }

    /** Raises the dynamic shared-memory limit when {@code bytes} exceeds the current one (48 KB by default). */
    void ensureDynamicShared(int bytes) {
        if (bytes > maxDynamicShared) {
            if (bytes > context.maxSharedPerBlockOptin()) {
                throw new CudaException("kernel " + name + " needs " + bytes + " bytes of shared memory; the device "
                        + "allows " + context.maxSharedPerBlockOptin(), -1);
            }
            Cuda.check(JCudaDriver.cuFuncSetAttribute(function,
                    CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
                    "cuFuncSetAttribute(" + name + ", max dynamic shared " + bytes + ")");
            maxDynamicShared = bytes;
        }
    }

    /** Launches on the context's stream. Grid dimensions of 0 launch nothing. */
    public void launch(int gx, int gy, int gz, int block, int sharedBytes, Object... args) {
        if (gx == 0 || gy == 0 || gz == 0) {
            return;
        }
        context.makeCurrent();
        ensureDynamicShared(sharedBytes);
        ProgrammaticLaunch programmatic = context.programmaticLauncher();
        if (programmatic != null) {
            int rc = programmatic.launch(function, context.stream(), gx, gy, gz, block, sharedBytes, args);
            Cuda.check(rc, "cuLaunchKernelEx(" + name + ", programmatic, grid " + gx + "x" + gy + "x" + gz + ", block "
                    + block + ", shared " + sharedBytes + ")");
            context.lastKernel(name);
            return;
        }
        NativePointerObject[] ptrs = new NativePointerObject[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a == null) {
                ptrs[i] = Pointer.to(new CUdeviceptr());
            } else if (a instanceof DeviceBuffer b) {
                ptrs[i] = Pointer.to(b.ptr());
            } else if (a instanceof CUdeviceptr p) {
                ptrs[i] = Pointer.to(p);
            } else if (a instanceof Integer v) {
                ptrs[i] = Pointer.to(new int[] {v});
            } else if (a instanceof Float v) {
                ptrs[i] = Pointer.to(new float[] {v});
            } else if (a instanceof Long v) {
                ptrs[i] = Pointer.to(new long[] {v});
            } else {
                throw new IllegalArgumentException("kernel " + name + ": argument " + i + " of unsupported type "
                        + a.getClass().getName());
            }
        }
        int rc = JCudaDriver.cuLaunchKernel(function, gx, gy, gz, block, 1, 1, sharedBytes, context.stream(),
                Pointer.to(ptrs), null);
        Cuda.check(rc, "cuLaunchKernel(" + name + ", grid " + gx + "x" + gy + "x" + gz + ", block " + block
                + ", shared " + sharedBytes + ")");
        context.lastKernel(name);
        if (SYNC_EACH) {
            context.synchronize();
        }
    }
}
