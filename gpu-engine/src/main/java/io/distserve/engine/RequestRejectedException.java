package io.distserve.engine;

/** The engine refused a submission; nothing was queued. */
public class RequestRejectedException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** Why, so that the HTTP layer can pick a status code. */
    public enum Reason {
        /** Malformed input (token ids out of range, duplicate request id, bad blocks): HTTP 400. */
        INVALID,
        /** The request can never fit (context length or KV cache size): HTTP 400. */
        TOO_LONG,
        /** The waiting queue is full: HTTP 429. */
        QUEUE_FULL,
        /** The engine is not started, draining or closed: HTTP 503. */
        NOT_ACCEPTING
    }

    private final Reason reason;

    public RequestRejectedException(Reason reason, String message) {
        super(message);
        this.reason = reason;
    }

    public Reason reason() {
        return reason;
    }
}
