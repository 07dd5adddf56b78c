package io.distserve.kv.transfer;

/** The serving peer refused a request (an error frame): e.g. a range outside its region, or a bad token. */
public class RemoteTransferException extends TransferException {
    public RemoteTransferException(String message) {
        super(message);
    }
}
