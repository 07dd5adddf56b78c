package io.distserve.engine;

/** A request failed inside the engine (backend or sampling error); the engine itself keeps serving. */
public final class GenerationFailedException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final transient FinishEvent partial;

    public GenerationFailedException(String message, Throwable cause, FinishEvent partial) {
        super(message, cause);
        this.partial = partial;
    }

    /** What the request had produced before it failed (reason {@code ERROR}). */
    public FinishEvent partial() {
        return partial;
    }
}
