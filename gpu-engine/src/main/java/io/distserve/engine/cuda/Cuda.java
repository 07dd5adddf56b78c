package io.distserve.engine.cuda;

import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/** Return-code checking for JCuda driver calls (JCuda's own exceptions stay off: every call is checked here). */
final class Cuda {

    private Cuda() {
    }

    /** @throws CudaException naming {@code call} unless {@code rc} is CUDA_SUCCESS */
    static void check(int rc, String call) {
        if (rc != CUresult.CUDA_SUCCESS) {
            throw new CudaException(call + " failed: " + describe(rc), rc);
        }
    }

    static String describe(int rc) {
        String name = CUresult.stringFor(rc);
        try {
            String[] text = new String[1];
            if (JCudaDriver.cuGetErrorString(rc, text) == CUresult.CUDA_SUCCESS && text[0] != null) {
                return name + " (" + text[0] + ")";
            }
        } catch (Throwable ignored) {
            // the name alone
        }
        return name;
    }
}
