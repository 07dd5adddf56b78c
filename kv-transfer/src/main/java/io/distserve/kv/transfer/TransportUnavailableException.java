package io.distserve.kv.transfer;

/** A transport was asked for by name but cannot run here (unknown name, native library missing, no device...). */
public class TransportUnavailableException extends RuntimeException {
    public TransportUnavailableException(String message) {
        super(message);
    }
}
