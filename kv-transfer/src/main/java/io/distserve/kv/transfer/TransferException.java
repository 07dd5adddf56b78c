package io.distserve.kv.transfer;

import java.io.IOException;

/** A transfer or connection failed; the message names the peer and what was outstanding. */
public class TransferException extends IOException {
    public TransferException(String message) {
        super(message);
    }

    public TransferException(String message, Throwable cause) {
        super(message, cause);
    }
}
