package io.distserve.kv.cuda;

import io.distserve.kv.device.DeviceException;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/** Return-code checks for the driver calls of this package (JCuda's own exceptions stay off). */
final class Driver {

    private Driver() {
    }

    static void check(int rc, String call) {
        if (rc != CUresult.CUDA_SUCCESS) {
            throw new DeviceException(call + " failed: " + describe(rc), rc);
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
