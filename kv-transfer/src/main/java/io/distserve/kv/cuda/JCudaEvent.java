package io.distserve.kv.cuda;

import io.distserve.kv.device.DeviceException;
import io.distserve.kv.device.GpuEvent;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/** A CUDA event recorded on a stream (no timing: cheaper to record and to query). */
final class JCudaEvent implements GpuEvent {

    private CUevent event;

    JCudaEvent(CUstream stream) {
        CUevent e = new CUevent();
        Driver.check(JCudaDriver.cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
        int rc = JCudaDriver.cuEventRecord(e, stream);
        if (rc != CUresult.CUDA_SUCCESS) {
            JCudaDriver.cuEventDestroy(e);
            throw new DeviceException("cuEventRecord failed: " + Driver.describe(rc), rc);
        }
        this.event = e;
    }

    @Override
    public synchronized boolean isComplete() {
        int rc = JCudaDriver.cuEventQuery(live());
        if (rc == CUresult.CUDA_SUCCESS) {
            return true;
        }
        if (rc == CUresult.CUDA_ERROR_NOT_READY) {
            return false;
        }
        throw new DeviceException("cuEventQuery failed: " + Driver.describe(rc), rc);
    }

    @Override
    public void await() {
        CUevent e;
        synchronized (this) {
            e = live();
        }
        Driver.check(JCudaDriver.cuEventSynchronize(e), "cuEventSynchronize");
    }

    private CUevent live() {
        if (event == null) {
            throw new IllegalStateException("event is closed");
        }
        return event;
    }

    @Override
    public synchronized void close() {
        if (event != null) {
            JCudaDriver.cuEventDestroy(event);
            event = null;
        }
    }
}
