package io.distserve.engine;

/**
 * Receives a request's output. Every request gets zero or more {@link #onToken} calls, then exactly one of
 * {@link #onFinish} or {@link #onError}.
 *
 * <p>Callbacks run on the engine's loop thread, between forward steps: they must be quick and must not block (hand
 * the event to a queue or an async writer). An exception thrown by a callback fails that request only.
 */
public interface GenerationListener {

    void onToken(TokenEvent event);

    void onFinish(FinishEvent event);

    /** The request failed; {@code error} is usually a {@link GenerationFailedException} with the partial output. */
    void onError(Throwable error);

    /** A listener that ignores everything (callers that only use the handle's future). */
    static GenerationListener none() {
        return new GenerationListener() {
            @Override
            public void onToken(TokenEvent event) {
            }

            @Override
            public void onFinish(FinishEvent event) {
            }

            @Override
            public void onError(Throwable error) {
            }
        };
    }
}
