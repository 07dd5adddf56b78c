package io.distserve.engine.cuda;

/** A failed CUDA driver call or kernel launch; the message names the call (and the kernel) and the CUDA error. */
public final class CudaException extends RuntimeException {

    private final int code;

    public CudaException(String message, int code) {
        super(message);
        this.code = code;
    }

    public CudaException(String message, Throwable cause) {
        super(message, cause);
        this.code = -1;
    }

    /** The CUresult, or -1 when the failure is not a driver error code. */
    public int code() {
        return code;
    }
}
