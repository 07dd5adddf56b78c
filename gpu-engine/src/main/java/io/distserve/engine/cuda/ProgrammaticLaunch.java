package io.distserve.engine.cuda;

import com.sun.jna.Function;
import com.sun.jna.Memory;
import com.sun.jna.NativeLibrary;
import java.lang.reflect.Method;
import jcuda.NativePointerObject;
import jcuda.driver.CUdeviceptr;

/**
 * Kernel launches with programmatic stream serialization (cuLaunchKernelEx with
 * {@code CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION}): the kernel may start while the one before it in
 * the stream is still finishing, and waits for it inside ({@code pdl_enter()} in common.cuh, griddepcontrol.wait).
 * Captured into a CUDA graph such launches become programmatic edges, so a decode step's ~360 kernels no longer
 * pay a full drain-and-launch gap each: the next GEMM's blocks are resident and have their first weights in
 * flight when the kernel before it ends.
 *
 * <p>Why JNA: JCuda 12.6 binds neither cuLaunchKernelEx nor cuGetProcAddress; JNA (already on the class path through
 * DJL's tokenizers) calls the driver's exported symbol directly, on the same libcuda.so.1 and the same context as
 * JCuda. Each call costs a few microseconds more than JCuda's cuLaunchKernel, which is why only graph captures use
 * it (a launch is captured once and replayed many times). The driver structs are laid out by hand, as cuda.h of
 * CUDA 12/13 defines them (CUlaunchConfig 56 bytes, CUlaunchAttribute 72).
 */
final class ProgrammaticLaunch {

    /** CUlaunchAttributeID CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION. */
    static final int ATTR_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
    static final int CONFIG_BYTES = 56;
    static final int ATTRIBUTE_BYTES = 72;

    private final Function launchEx;
    private final Method nativePointer;
    private final Method byteOffset;

    private ProgrammaticLaunch(Function launchEx, Method nativePointer, Method byteOffset) {
        this.launchEx = launchEx;
        this.nativePointer = nativePointer;
        this.byteOffset = byteOffset;
    }

    /** The result of {@link #load}: the launcher, or why there is none. */
    record Loaded(ProgrammaticLaunch launcher, String unavailableReason) {
    }

    /** Binds cuLaunchKernelEx of libcuda.so.1; never throws. */
    static Loaded load() {
        try {
            Method np = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            np.setAccessible(true);
            Method off = jcuda.Pointer.class.getDeclaredMethod("getByteOffset");
            off.setAccessible(true);
            NativeLibrary cuda = NativeLibrary.getInstance("libcuda.so.1");
            return new Loaded(new ProgrammaticLaunch(cuda.getFunction("cuLaunchKernelEx"), np, off), null);
        } catch (Throwable e) { // UnsatisfiedLinkError, NoClassDefFoundError (no JNA), reflection refused
            return new Loaded(null, e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    /** The address a JCuda handle or device pointer stands for (its native pointer plus its byte offset). */
    long address(NativePointerObject p) {
        try {
            long base = (Long) nativePointer.invoke(p);
            return p instanceof jcuda.Pointer ptr ? base + (Long) byteOffset.invoke(ptr) : base;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read a JCuda handle's address", e);
        }
    }

    /**
     * The kernel parameters as cuLaunchKernelEx takes them: an array of pointers, one per argument, each to an
     * 8-byte slot holding the value (device pointers as addresses, Integer and Float as 4 bytes, Long as 8).
     * Packed into one allocation: slots first, then the pointer array.
     */
    Memory parameters(Object[] args) {
        int n = args.length;
        Memory m = new Memory(Math.max(16L * n, 16));
        for (int i = 0; i < n; i++) {
            long slot = 8L * i;
            Object a = args[i];
            if (a == null) {
                m.setLong(slot, 0L);
            } else if (a instanceof DeviceBuffer b) {
                m.setLong(slot, address(b.ptr()));
            } else if (a instanceof CUdeviceptr p) {
                m.setLong(slot, address(p));
            } else if (a instanceof Integer v) {
                m.setInt(slot, v);
            } else if (a instanceof Float v) {
                m.setFloat(slot, v);
            } else if (a instanceof Long v) {
                m.setLong(slot, v);
            } else {
                throw new IllegalArgumentException("argument " + i + " of unsupported type " + a.getClass().getName());
            }
            m.setPointer(8L * n + 8L * i, m.share(slot));
        }
        return m;
    }

    /** CUlaunchConfig with one attribute, programmatic stream serialization allowed. */
    static Memory config(int gx, int gy, int gz, int block, int sharedBytes, long stream, Memory attribute) {
        Memory c = new Memory(CONFIG_BYTES);
        c.clear();
        c.setInt(0, gx);
        c.setInt(4, gy);
        c.setInt(8, gz);
        c.setInt(12, block);
        c.setInt(16, 1);
        c.setInt(20, 1);
        c.setInt(24, sharedBytes);
        c.setLong(32, stream);
        c.setPointer(40, attribute);
        c.setInt(48, 1);
        return c;
    }

    static Memory programmaticAttribute() {
        Memory a = new Memory(ATTRIBUTE_BYTES);
        a.clear();
        a.setInt(0, ATTR_PROGRAMMATIC_STREAM_SERIALIZATION);
        a.setInt(8, 1); // value.programmaticStreamSerializationAllowed
        return a;
    }

    /** Launches {@code function} on {@code stream} with programmatic serialization. @return the CUresult */
    int launch(NativePointerObject function, NativePointerObject stream, int gx, int gy, int gz, int block,
               int sharedBytes, Object[] args) {
        Memory attribute = programmaticAttribute();
        Memory config = config(gx, gy, gz, block, sharedBytes, address(stream), attribute);
        Memory params = parameters(args);
        int rc = launchEx.invokeInt(new Object[] {config, new com.sun.jna.Pointer(address(function)),
                params.share(8L * args.length), null});
        // the driver has copied the parameters; keep the memory reachable until here
        java.lang.ref.Reference.reachabilityFence(attribute);
        java.lang.ref.Reference.reachabilityFence(config);
        java.lang.ref.Reference.reachabilityFence(params);
        return rc;
    }
}
