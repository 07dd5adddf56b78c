package io.distserve.kv.transfer;

/**
 * A well-formed endpoint that this engine cannot use: a CUDA IPC handle of another host or of this very process, a
 * handle the driver does not open, an allocation smaller than the region it claims. Unlike an unreachable peer
 * (try again later) this will not change: callers answer it as bad input, and a proxy choosing transports falls back
 * to another one.
 */
public class EndpointRefusedException extends TransferException {
    public EndpointRefusedException(String message) {
        super(message);
    }

    public EndpointRefusedException(String message, Throwable cause) {
        super(message, cause);
    }
}
