package io.distserve.engine.cuda;

import jcuda.driver.CUcontext;
import jcuda.driver.CUdeviceptr;

/**
 * The CUDA backend's KV pool as the KV-transfer layer needs it: the context it lives in (a transfer thread makes it
 * current before touching the pool), its base pointer (one cuMemAlloc allocation: exportable through CUDA IPC) and
 * its size, in the {@link io.distserve.engine.kv.KvCacheLayout} block-major layout.
 */
public record DeviceKvPool(CUcontext context, CUdeviceptr base, long bytes) {
}
