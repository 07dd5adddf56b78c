package io.distserve.kv.cuda;

import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Whether the device-memory transports can run in this JVM, and why not: the kernels' fatbin is in the build, JCuda's
 * driver binding loads (it needs libcuda.so.1), {@code cuInit} works and a device is visible. Never throws.
 */
public final class CudaAvailability {

    private CudaAvailability() {
    }

    /** Null when usable; otherwise one line for the operator. */
    public static String unavailableReason() {
        if (CudaAvailability.class.getResource(JCudaGpuDevice.FATBIN) == null) {
            return "this build has no kv-transfer CUDA kernels (nvcc was not found when it was built)";
        }
        try {
            JCudaDriver.setExceptionsEnabled(false);
        } catch (Throwable t) {
            String m = String.valueOf(t.getMessage());
            return m.contains("libcuda") ? "no CUDA driver on this machine (libcuda.so.1 not found)"
                    : "cannot load JCuda's driver binding: " + t.getClass().getSimpleName() + ": " + m.replace('\n', ' ');
        }
        try {
            int rc = JCudaDriver.cuInit(0);
            if (rc != CUresult.CUDA_SUCCESS) {
                return "no usable CUDA device (cuInit: " + Driver.describe(rc) + "; CUDA_VISIBLE_DEVICES="
                        + System.getenv("CUDA_VISIBLE_DEVICES") + ")";
            }
            int[] count = new int[1];
            rc = JCudaDriver.cuDeviceGetCount(count);
            if (rc != CUresult.CUDA_SUCCESS || count[0] < 1) {
                return "no CUDA device (CUDA_VISIBLE_DEVICES=" + System.getenv("CUDA_VISIBLE_DEVICES") + ")";
            }
            return null;
        } catch (Throwable t) {
            return "the CUDA driver is not usable: " + t.getClass().getSimpleName() + ": " + t.getMessage();
        }
    }
}
