package io.distserve.engine;

import java.util.concurrent.CompletableFuture;

/** A submitted request. */
public interface GenerationHandle {

    String requestId();

    /**
     * Completes with the finish event after the listener's {@code onFinish}, or exceptionally (with a
     * {@link GenerationFailedException}) after its {@code onError}.
     */
    CompletableFuture<FinishEvent> completion();

    /** Asks the engine to abort the request; false when it already ended. */
    boolean abort();
}
