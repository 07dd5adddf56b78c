package io.distserve.engine.cuda;

import java.io.IOException;
import java.io.InputStream;
import jcuda.driver.CUdevice;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Whether this JVM can run the CUDA backend, and why not. The probe (run once, cached) loads JCuda's driver
 * binding (which needs {@code libcuda.so.1}), calls {@code cuInit}, counts devices (device 0 is the first that
 * {@code CUDA_VISIBLE_DEVICES} exposes) and looks for the kernels' fatbin on the classpath. It never throws: any
 * failure, including an {@link UnsatisfiedLinkError}, becomes the reason.
 */
public final class CudaDevice {

    /** Classpath resource of the kernels compiled by nvcc at build time. */
    public static final String FATBIN = "/cuda/distserve_kernels.fatbin";
    /** The ptxas resource report of the same build, when it ran. */
    public static final String PTXAS_REPORT = "/cuda/distserve_kernels.ptxas.txt";

    private static volatile String reason;
    private static volatile boolean probed;

    private CudaDevice() {
    }

    /** True when a context can be created on device 0 and the fatbin is in this build. */
    public static boolean isAvailable() {
        return unavailableReason() == null;
    }

    /** Null when available; otherwise one line saying why the CUDA backend cannot run here. */
    public static synchronized String unavailableReason() {
        if (!probed) {
            reason = probe();
            probed = true;
        }
        return reason;
    }

    private static String probe() {
        if (CudaDevice.class.getResource(FATBIN) == null) {
            return "this build has no CUDA kernels (nvcc was not found when it was built): rebuild with nvcc on PATH "
                    + "or CUDA_HOME set";
        }
        try {
            JCudaDriver.setExceptionsEnabled(false);
        } catch (Throwable t) {
            String m = String.valueOf(t.getMessage());
            if (m.contains("libcuda.so")) {
                return "no CUDA driver on this machine (libcuda.so.1 not found; JCuda's libJCudaDriver cannot load)";
            }
            return "cannot load JCuda's driver binding: " + oneLine(t);
        }
        try {
            int rc = JCudaDriver.cuInit(0);
            if (rc == CUresult.CUDA_ERROR_NO_DEVICE) {
                return "no CUDA device (cuInit: " + Cuda.describe(rc) + "; CUDA_VISIBLE_DEVICES="
                        + System.getenv("CUDA_VISIBLE_DEVICES") + ")";
            }
            if (rc != CUresult.CUDA_SUCCESS) {
                return "cuInit failed: " + Cuda.describe(rc);
            }
            int[] count = new int[1];
            rc = JCudaDriver.cuDeviceGetCount(count);
            if (rc != CUresult.CUDA_SUCCESS) {
                return "cuDeviceGetCount failed: " + Cuda.describe(rc);
            }
            if (count[0] < 1) {
                return "no CUDA device (CUDA_VISIBLE_DEVICES=" + System.getenv("CUDA_VISIBLE_DEVICES") + ")";
            }
            CUdevice dev = new CUdevice();
            rc = JCudaDriver.cuDeviceGet(dev, 0);
            if (rc != CUresult.CUDA_SUCCESS) {
                return "cuDeviceGet(0) failed: " + Cuda.describe(rc);
            }
            return null;
        } catch (Throwable t) {
            return "the CUDA driver is not usable: " + oneLine(t);
        }
    }

    private static String oneLine(Throwable t) {
        String m = t.getMessage();
        String line = t.getClass().getSimpleName() + (m == null ? "" : ": " + m.replace('\n', ' '));
        return line.length() > 300 ? line.substring(0, 300) + "..." : line;
    }

    /** Opens a context on device 0 with the kernels loaded. @throws IllegalStateException when unavailable */
    public static CudaContext open() {
        String why = unavailableReason();
        if (why != null) {
            throw new IllegalStateException("CUDA backend unavailable: " + why);
        }
        return new CudaContext(0, readFatbin());
    }

    static byte[] readFatbin() {
        try (InputStream in = CudaDevice.class.getResourceAsStream(FATBIN)) {
            if (in == null) {
                throw new IllegalStateException("no " + FATBIN + " on the classpath");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + FATBIN + ": " + e.getMessage(), e);
        }
    }

    /** The build's ptxas report (registers, shared memory, spills per kernel), or null. */
    public static String ptxasReport() {
        try (InputStream in = CudaDevice.class.getResourceAsStream(PTXAS_REPORT)) {
            return in == null ? null : new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        } catch (IOException e) {
            return null;
        }
    }
}
