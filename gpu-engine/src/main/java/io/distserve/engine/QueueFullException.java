package io.distserve.engine;

/** The waiting queue is at its limit; the client should retry later (HTTP 429). */
public final class QueueFullException extends RequestRejectedException {

    private static final long serialVersionUID = 1L;

    public QueueFullException(String message) {
        super(Reason.QUEUE_FULL, message);
    }
}
