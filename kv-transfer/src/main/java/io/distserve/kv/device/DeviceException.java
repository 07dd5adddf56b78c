package io.distserve.kv.device;

/** A driver call failed; the message names the call and the driver's error. */
public class DeviceException extends RuntimeException {

    private final int code;

    public DeviceException(String message, int code) {
        super(message);
        this.code = code;
    }

    /** The driver's result code (CUresult), or -1 when the failure is not the driver's. */
    public int code() {
        return code;
    }
}
