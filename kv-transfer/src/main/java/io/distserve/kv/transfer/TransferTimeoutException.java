package io.distserve.kv.transfer;

/** A batch or a connect did not finish in time. A timed-out batch has been aborted: no more bytes of it will land. */
public class TransferTimeoutException extends TransferException {
    public TransferTimeoutException(String message) {
        super(message);
    }
}
