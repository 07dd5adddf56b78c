package io.distserve.processors.engine;

import io.distserve.engine.FinishEvent;
import io.distserve.engine.GenerationHandle;
import io.distserve.engine.GenerationListener;
import io.distserve.engine.QueueFullException;
import io.distserve.engine.RequestRejectedException;
import io.distserve.engine.TokenEvent;
import io.distserve.processors.openai.OpenAiException;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One request submitted to the engine, its events handed from the engine thread to the HTTP worker through a
 * queue (engine callbacks must stay quick). Engine refusals become OpenAI errors: a full queue is 429, a request
 * that can never fit is 400.
 */
final class Submission implements GenerationListener {

    /** What the worker takes from the queue: a token, the end, or a failure. */
    sealed interface Event permits Token, Finished, Failed {
    }

    record Token(TokenEvent event) implements Event {
    }

    record Finished(FinishEvent event) implements Event {
    }

    record Failed(Throwable error) implements Event {
    }

    private final BlockingQueue<Event> events = new LinkedBlockingQueue<>();
    private GenerationHandle handle;

    static Submission submit(EngineNode node, PreparedGeneration prepared) {
        Submission s = new Submission();
        try {
            s.handle = node.engine().submit(prepared.generation(), s);
        } catch (QueueFullException e) {
            throw OpenAiException.overloaded("The engine's queue is full; retry later. (" + e.getMessage() + ")");
        } catch (RequestRejectedException e) {
            throw OpenAiException.badRequest("max_tokens", e.getMessage());
        }
        return s;
    }

    GenerationHandle handle() {
        return handle;
    }

    /** The next event, or null after the timeout. */
    Event next(long timeoutMillis) throws InterruptedException {
        return events.poll(timeoutMillis, TimeUnit.MILLISECONDS);
    }

    @Override
    public void onToken(TokenEvent event) {
        events.add(new Token(event));
    }

    @Override
    public void onFinish(FinishEvent event) {
        events.add(new Finished(event));
    }

    @Override
    public void onError(Throwable error) {
        events.add(new Failed(error));
    }
}
