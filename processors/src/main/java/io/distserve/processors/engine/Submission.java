package io.distserve.processors.engine;

import io.distserve.engine.FinishEvent;
import io.distserve.engine.GenerationHandle;
import io.distserve.engine.GenerationListener;
import io.distserve.engine.QueueFullException;
import io.distserve.engine.RequestRejectedException;
import io.distserve.engine.TokenEvent;
import io.distserve.processors.disagg.MigratedKv;
import io.distserve.processors.disagg.PrefillLeases;
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
    private final PreparedGeneration prepared;
    private final PrefillLeases leases;
    private GenerationHandle handle;

    private Submission(PreparedGeneration prepared, PrefillLeases leases) {
        this.prepared = prepared;
        this.leases = leases;
    }

    static Submission submit(EngineNode node, PreparedGeneration prepared) {
        Submission s = new Submission(prepared, node.leases());
        try {
            s.handle = switch (prepared.mode()) {
                case NORMAL -> node.engine().submit(prepared.generation(), s);
                case PREFILL -> node.engine().submitKeepingBlocks(prepared.generation(), s);
                case MIGRATED -> submitMigrated(node, prepared, s);
            };
        } catch (QueueFullException e) {
            throw OpenAiException.overloaded("The engine's queue is full; retry later. (" + e.getMessage() + ")");
        } catch (RequestRejectedException e) {
            throw OpenAiException.badRequest(prepared.mode() == PreparedGeneration.Mode.MIGRATED
                    ? "migration_request" : "max_tokens", e.getMessage());
        }
        return s;
    }

    /** Ownership of the pulled blocks passes to the engine only when it accepts them; else they are freed here. */
    private static GenerationHandle submitMigrated(EngineNode node, PreparedGeneration p, Submission s) {
        MigratedKv kv = p.migrated();
        if (kv == null) {
            throw new IllegalStateException("migrated request " + p.id() + " reached the engine before its KV pull");
        }
        try {
            return node.engine().submitPrefilled(p.generation(), kv.localBlocks(), kv.firstToken(), s);
        } catch (RuntimeException e) {
            node.engine().blockManager().free(kv.localBlocks());
            throw e;
        }
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

    /**
     * On the engine thread: a prefill's kept blocks go under a lease right here, so that no failure of the HTTP
     * worker afterwards can leak them.
     */
    @Override
    public void onFinish(FinishEvent event) {
        if (event.keptBlocks() != null && event.keptBlocks().length > 0) {
            try {
                leases.hold(prepared.id(), event.keptBlocks(), event.promptTokens(),
                        event.tokenIds().length > 0 ? event.tokenIds()[0] : -1);
            } catch (RuntimeException e) {
                // hold() frees the blocks when it refuses them; the waiting worker must hear of it, not hang
                events.add(new Failed(e));
                return;
            }
        }
        events.add(new Finished(event));
    }

    @Override
    public void onError(Throwable error) {
        events.add(new Failed(error));
    }
}
