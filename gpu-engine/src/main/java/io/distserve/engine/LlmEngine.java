package io.distserve.engine;

import io.distserve.engine.SequenceSlice.LogitsMode;
import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.sampling.Sampler;
import io.distserve.engine.sched.FinishReason;
import io.distserve.engine.sched.ScheduledChunk;
import io.distserve.engine.sched.Scheduler;
import io.distserve.engine.sched.SchedulerOutput;
import io.distserve.engine.sched.Sequence;
import io.distserve.engine.sched.SequenceStatus;
import io.distserve.engine.tokenizer.TextTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The serving engine: continuous batching over a {@link ComputeBackend}, one loop thread.
 *
 * <p>Lifecycle: construct, {@link #start()}, submit, then {@link #drain()} (stop accepting, let running requests end)
 * and/or {@link #close()} (stop accepting, abort what remains, join the loop). The backend, tokenizer and block
 * manager belong to the caller, who closes them after the engine.
 *
 * <p>Threads: {@code submit}, {@code abort}, {@code stats} and the lifecycle methods may be called from any thread;
 * they talk to the loop through a queue. Everything else (scheduler, sequences, sampling, listener callbacks) runs on
 * the loop thread. The loop sleeps on its queue when there is nothing to do.
 *
 * <p>Failures: a backend exception fails the sequences of that step, a sampling or listener exception fails that
 * sequence; their blocks are freed, their listeners get {@code onError}, and the loop goes on serving.
 */
public final class LlmEngine implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(LlmEngine.class);
    /**
     * How long the loop waits before retrying when work exists but nothing could be scheduled: the missing blocks
     * are held outside the loop (leases), and their release from another thread does not wake the loop.
     */
    private static final long BLOCKED_RETRY_MILLIS = 5;

    private enum State { NEW, RUNNING, DRAINING, CLOSED }

    /** Messages to the loop. */
    private sealed interface Command permits Submit, Abort, Wake, Shutdown {
    }

    private record Submit(Handle handle, Optional<Integer> prefilledFirstToken) implements Command {
    }

    private record Abort(String requestId) implements Command {
    }

    /** Makes the loop look at its state again (drain of an idle engine). */
    private record Wake() implements Command {
    }

    private record Shutdown() implements Command {
    }

    /** A live request: what the loop needs besides the sequence, and the caller's view of it. */
    private final class Handle implements GenerationHandle {
        final Sequence seq;
        final GenerationListener listener;
        final CompletableFuture<FinishEvent> completion = new CompletableFuture<>();
        /** True until the sequence is first admitted (or ends): it counts against maxWaiting. Loop thread only. */
        boolean holdsQueueSlot = true;

        Handle(Sequence seq, GenerationListener listener) {
            this.seq = seq;
            this.listener = listener;
        }

        @Override
        public String requestId() {
            return seq.requestId();
        }

        @Override
        public CompletableFuture<FinishEvent> completion() {
            return completion;
        }

        @Override
        public boolean abort() {
            return LlmEngine.this.abort(seq.requestId());
        }
    }

    private final ComputeBackend backend;
    private final BlockManager blockManager;
    private final TextTokenizer tokenizer;
    private final Set<Integer> eosIds;
    private final EngineConfig config;
    private final Scheduler scheduler;
    private final int vocabSize;
    private final int blockSize;
    private final int maxPositions;

    private final LinkedBlockingQueue<Command> inbox = new LinkedBlockingQueue<>();
    /** Requests from submit until their terminal callback, by request id (any thread). */
    private final ConcurrentHashMap<String, Handle> active = new ConcurrentHashMap<>();
    /** Loop thread only: the handle of each sequence the scheduler holds. */
    private final Map<Sequence, Handle> live = new IdentityHashMap<>();
    private final AtomicInteger queuedNew = new AtomicInteger();
    private final AtomicInteger pendingSubmits = new AtomicInteger();
    private final AtomicLong nextSequenceId = new AtomicLong();
    private final AtomicLong nextArrival = new AtomicLong();
    private final CompletableFuture<Void> drained = new CompletableFuture<>();

    private final Object lifecycle = new Object();
    private State state = State.NEW;
    private Thread loopThread;

    private volatile int waitingSnapshot;
    private volatile int runningSnapshot;
    private final AtomicLong tokensGenerated = new AtomicLong();
    private final AtomicLong requestsFinished = new AtomicLong();
    private final AtomicLong requestsAborted = new AtomicLong();
    private final AtomicLong requestsFailed = new AtomicLong();
    private final AtomicLong steps = new AtomicLong();
    private volatile long preemptions;
    private volatile long prefixQueried;
    private volatile long prefixHits;

    /**
     * @param blockManager the pool of this backend's KV blocks (at most {@code backend.kvLayout().numBlocks()})
     * @param eosIds       ids that end generation unless the request ignores EOS
     */
    public LlmEngine(ComputeBackend backend, BlockManager blockManager, TextTokenizer tokenizer,
            Collection<Integer> eosIds, EngineConfig config) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.blockManager = Objects.requireNonNull(blockManager, "blockManager");
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        this.eosIds = Set.copyOf(eosIds);
        this.config = Objects.requireNonNull(config, "config");
        if (blockManager.totalBlocks() > backend.kvLayout().numBlocks()) {
            throw new IllegalArgumentException("block manager has " + blockManager.totalBlocks()
                    + " blocks, the backend's KV pool only " + backend.kvLayout().numBlocks());
        }
        this.vocabSize = backend.config().vocabSize();
        this.blockSize = backend.kvLayout().blockSize();
        this.maxPositions = backend.config().maxPositions();
        this.scheduler = new Scheduler(blockManager, blockSize, config.maxBatchedTokens(), config.maxRunning());
    }

    /** Starts the loop thread. */
    public void start() {
        synchronized (lifecycle) {
            if (state != State.NEW) {
                throw new IllegalStateException("engine already started (" + state + ")");
            }
            loopThread = new Thread(this::runLoop, "llm-engine-" + backend.name());
            loopThread.setDaemon(true);
            state = State.RUNNING;
            loopThread.start();
        }
    }

    // ------------------------------------------------------------------------------------------------ public API

    /**
     * Queues a request.
     *
     * @throws QueueFullException       the waiting queue is full (retry later)
     * @throws RequestRejectedException the request is invalid, can never fit, or the engine is not accepting
     */
    public GenerationHandle submit(GenerationRequest req, GenerationListener listener) {
        return enqueue(req, listener, false, null, 0);
    }

    /**
     * Like {@link #submit}, but on a normal finish (stop or length) the sequence's KV blocks are not freed: their ids
     * go to the listener in {@link FinishEvent#keptBlocks()}, which then owns them and must free them through
     * {@link #blockManager()} (the Prefill role's lease). They hold the K/V of every computed position: the prompt,
     * and the generated tokens except the last. Aborted or failed requests free their blocks as usual.
     */
    public GenerationHandle submitKeepingBlocks(GenerationRequest req, GenerationListener listener) {
        return enqueue(req, listener, true, null, 0);
    }

    /**
     * Admits a sequence whose prompt K/V already sits in {@code blockIds} of this engine's pool (allocated through
     * {@link #blockManager()} and filled, e.g. by a KV migration), with its first token already sampled elsewhere.
     * The first token is reported as the request's first {@link TokenEvent}, then decoding continues here.
     *
     * <p>Ownership of the block references passes to the engine when this method returns normally (they are freed
     * when the request ends, however it ends); if it throws, they stay with the caller.
     *
     * <p>A request with {@link GenerationRequest#resumeTokens()} continues an answer begun elsewhere: the blocks hold
     * the K/V of the prompt and of those tokens, and {@code firstToken} is the one sampled after them.
     *
     * @param blockIds exactly the blocks of the prompt and the resumed tokens, in order:
     *                 {@code ceil((prompt + resumed) / blockSize)} of them
     */
    public GenerationHandle submitPrefilled(GenerationRequest req, int[] blockIds, int firstToken,
            GenerationListener listener) {
        int[] blocks = blockIds.clone();
        int kvTokens = req.promptTokens().length + req.resumeTokens().length;
        int needed = (kvTokens + blockSize - 1) / blockSize;
        if (blocks.length != needed) {
            throw new RequestRejectedException(RequestRejectedException.Reason.INVALID, "a prompt of "
                    + kvTokens + " tokens needs " + needed + " KV blocks, got " + blocks.length);
        }
        for (int b : blocks) {
            if (b < 0 || b >= blockManager.totalBlocks() || blockManager.refCount(b) == 0) {
                throw new RequestRejectedException(RequestRejectedException.Reason.INVALID,
                        "KV block " + b + " is not an allocated block of this engine");
            }
        }
        if (firstToken < 0 || firstToken >= vocabSize) {
            throw new RequestRejectedException(RequestRejectedException.Reason.INVALID,
                    "first token " + firstToken + " is outside the vocabulary (" + vocabSize + ")");
        }
        return enqueue(req, listener, false, blocks, firstToken);
    }

    /** Asks the loop to abort a request (waiting, running or mid-prefill); false when no such request is live. */
    public boolean abort(String requestId) {
        if (!active.containsKey(requestId)) {
            return false;
        }
        inbox.add(new Abort(requestId));
        return true;
    }

    /**
     * Generates to the end and returns the result: for the CLI and tests.
     *
     * @throws GenerationFailedException when the request failed
     * @throws InterruptedException      when interrupted (the request is aborted)
     */
    public FinishEvent generate(GenerationRequest req) throws InterruptedException {
        GenerationHandle handle = submit(req, GenerationListener.none());
        try {
            return handle.completion().get();
        } catch (InterruptedException e) {
            handle.abort();
            throw e;
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new GenerationFailedException("request " + req.requestId() + " failed", e.getCause(), null);
        }
    }

    /**
     * Stops accepting requests; those already submitted run to their end.
     *
     * @return completes when no request is left
     */
    public CompletableFuture<Void> drain() {
        synchronized (lifecycle) {
            if (state == State.RUNNING || state == State.NEW) {
                state = State.DRAINING;
            }
            if (loopThread == null) {
                drained.complete(null); // never started: nothing can be in flight
            }
        }
        inbox.add(new Wake());
        return drained;
    }

    /** Stops accepting, aborts every remaining request (listeners get onFinish with reason abort), joins the loop. */
    @Override
    public void close() {
        Thread thread;
        synchronized (lifecycle) {
            if (state == State.CLOSED) {
                return;
            }
            boolean started = loopThread != null;
            state = State.CLOSED;
            thread = loopThread;
            if (started) {
                inbox.add(new Shutdown());
            }
        }
        if (thread != null) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        drained.complete(null);
    }

    public EngineStats stats() {
        return new EngineStats(waitingSnapshot + pendingSubmits.get(), runningSnapshot, blockManager.usedCount(),
                blockManager.freeCount(), blockManager.totalBlocks(), tokensGenerated.get(), requestsFinished.get(),
                requestsAborted.get(), requestsFailed.get(), preemptions, steps.get(), prefixQueried, prefixHits,
                blockManager.cachedCount(), blockManager.evictions());
    }

    public BlockManager blockManager() {
        return blockManager;
    }

    public EngineConfig config() {
        return config;
    }

    // ----------------------------------------------------------------------------------------------- submission

    private GenerationHandle enqueue(GenerationRequest req, GenerationListener listener, boolean keepBlocks,
            int[] prefilledBlocks, int firstToken) {
        Objects.requireNonNull(listener, "listener");
        int[] prompt = req.promptTokens();
        validate(req, prompt);
        long arrival = nextArrival.getAndIncrement();
        long now = System.nanoTime();
        long id = nextSequenceId.getAndIncrement();
        int[] resume = req.resumeTokens();
        for (int t : resume) {
            if (t < 0 || t >= vocabSize) {
                throw new RequestRejectedException(RequestRejectedException.Reason.INVALID,
                        "resumed token " + t + " is outside the vocabulary (" + vocabSize + ")");
            }
        }
        Sequence seq;
        try {
            if (prefilledBlocks == null) {
                seq = Sequence.create(id, req.requestId(), prompt, req.params(), arrival, now, keepBlocks, tokenizer,
                        eosIds);
                if (resume.length > 0) {
                    seq.resume(resume);
                }
            } else {
                // a migrated request that resumes: the blocks hold the K/V of the prompt and of the resumed tokens
                seq = Sequence.prefilled(id, req.requestId(), prompt, req.params(), arrival, now, tokenizer, eosIds,
                        prefilledBlocks, blockSize, resume);
            }
        } catch (IllegalArgumentException e) {
            throw new RequestRejectedException(RequestRejectedException.Reason.INVALID, e.getMessage());
        }
        Handle handle = new Handle(seq, listener);
        synchronized (lifecycle) {
            // Under the lifecycle lock so that close() cannot slip in between the check and the enqueue: a
            // submission that got in is always seen by the loop before its shutdown command.
            if (state != State.RUNNING) {
                throw new RequestRejectedException(RequestRejectedException.Reason.NOT_ACCEPTING,
                        "engine is not accepting requests (" + state.name().toLowerCase() + ")");
            }
            if (!tryTakeQueueSlot()) {
                throw new QueueFullException("waiting queue is full (" + config.maxWaiting() + " requests)");
            }
            if (active.putIfAbsent(req.requestId(), handle) != null) {
                queuedNew.decrementAndGet();
                throw new RequestRejectedException(RequestRejectedException.Reason.INVALID,
                        "request id " + req.requestId() + " is already in use");
            }
            pendingSubmits.incrementAndGet();
            inbox.add(new Submit(handle, prefilledBlocks == null ? Optional.empty() : Optional.of(firstToken)));
        }
        return handle;
    }

    private void validate(GenerationRequest req, int[] prompt) {
        if (prompt.length == 0) {
            throw new RequestRejectedException(RequestRejectedException.Reason.INVALID, "the prompt is empty");
        }
        for (int t : prompt) {
            if (t < 0 || t >= vocabSize) {
                throw new RequestRejectedException(RequestRejectedException.Reason.INVALID,
                        "prompt token " + t + " is outside the vocabulary (" + vocabSize + ")");
            }
        }
        long total = (long) prompt.length + req.params().maxTokens();
        if (total > maxPositions) {
            throw new RequestRejectedException(RequestRejectedException.Reason.TOO_LONG, "the prompt ("
                    + prompt.length + " tokens) plus max_tokens (" + req.params().maxTokens()
                    + ") exceeds the model's context length (" + maxPositions + ")");
        }
        long blocksNeeded = (total + blockSize - 1) / blockSize;
        if (blocksNeeded > blockManager.totalBlocks()) {
            throw new RequestRejectedException(RequestRejectedException.Reason.TOO_LONG, "the prompt ("
                    + prompt.length + " tokens) plus max_tokens (" + req.params().maxTokens() + ") needs "
                    + blocksNeeded + " KV blocks of " + blockSize + " tokens; the cache holds only "
                    + blockManager.totalBlocks());
        }
    }

    private boolean tryTakeQueueSlot() {
        while (true) {
            int n = queuedNew.get();
            if (n >= config.maxWaiting()) {
                return false;
            }
            if (queuedNew.compareAndSet(n, n + 1)) {
                return true;
            }
        }
    }

    // --------------------------------------------------------------------------------------------------- loop

    private void runLoop() {
        Command next = null;
        boolean shutdown = false;
        while (!shutdown) {
            try {
                if (next == null) {
                    next = scheduler.hasWork() ? inbox.poll() : inbox.take();
                }
                shutdown = applyCommands(next);
                next = null;
                if (!shutdown && scheduler.hasWork() && !step()) {
                    next = inbox.poll(BLOCKED_RETRY_MILLIS, TimeUnit.MILLISECONDS);
                }
            } catch (InterruptedException e) {
                LOG.warn("engine loop interrupted; shutting down");
                shutdown = true;
            } catch (Throwable t) {
                // A bug outside the per-step guards: fail what is in flight rather than leave it hanging, keep going.
                LOG.error("engine loop error; failing all in-flight requests", t);
                next = null;
                for (Sequence seq : scheduler.all()) {
                    fail(seq, "engine loop error: " + t, t);
                }
            }
            publishSnapshot();
            checkDrained();
        }
        for (Sequence seq : scheduler.all()) {
            abortSequence(seq);
        }
        // Submissions that raced with close are in the inbox (before Shutdown, which we consumed): none remain
        // after it, because submit refuses once the state is CLOSED.
        publishSnapshot();
    }

    /** Applies the given command and everything else queued; returns true on shutdown. */
    private boolean applyCommands(Command first) {
        boolean shutdown = false;
        for (Command c = first; c != null; c = inbox.poll()) {
            if (c instanceof Submit s) {
                pendingSubmits.decrementAndGet();
                admitSubmission(s);
            } else if (c instanceof Abort a) {
                Handle h = active.get(a.requestId());
                if (h != null && live.containsKey(h.seq)) {
                    abortSequence(h.seq);
                }
            } else if (c instanceof Shutdown) {
                shutdown = true;
            }
        }
        return shutdown;
    }

    private void admitSubmission(Submit s) {
        Sequence seq = s.handle().seq;
        live.put(seq, s.handle());
        scheduler.add(seq);
        if (s.prefilledFirstToken().isPresent()) {
            // The first token was sampled by the prefill engine: report it, it may already end the request.
            try {
                deliverToken(seq, s.prefilledFirstToken().get(), System.nanoTime());
            } catch (RuntimeException e) {
                fail(seq, "first token of a prefilled request failed: " + e, e);
            }
        }
    }

    /**
     * One forward step.
     *
     * @return false when nothing could be scheduled (blocks held elsewhere)
     */
    private boolean step() {
        SchedulerOutput out = scheduler.schedule();
        preemptions = scheduler.preemptions();
        if (out.isEmpty()) {
            return false;
        }
        steps.incrementAndGet();
        List<ScheduledChunk> chunks = out.chunks();
        List<SequenceSlice> batch = new ArrayList<>(chunks.size());
        int expectedRows = 0;
        for (ScheduledChunk c : chunks) {
            Sequence seq = c.sequence();
            Handle h = live.get(seq);
            if (h.holdsQueueSlot) {
                h.holdsQueueSlot = false;
                queuedNew.decrementAndGet();
            }
            if (c.start() != seq.numComputed()) {
                throw new IllegalStateException("chunk " + c + " does not start at the computed length of " + seq);
            }
            batch.add(new SequenceSlice(seq.id(), seq.tokens(c.start(), c.start() + c.length()), c.start(),
                    seq.blockTable().toArray(), c.samples() ? LogitsMode.LAST : LogitsMode.NONE));
            expectedRows += c.samples() ? 1 : 0;
        }
        // When every sequence that samples in this step is plainly greedy, the token is the argmax of its logits
        // row: let the backend pick it (on a GPU, only ids come back instead of vocabSize floats per row).
        boolean greedyStep = expectedRows > 0;
        for (ScheduledChunk c : chunks) {
            if (c.samples() && !Sampler.isPlainGreedy(c.sequence().params())) {
                greedyStep = false;
            }
        }
        // Otherwise the backend applies the repetition penalties and samples (temperature, top-k, top-p, min-p)
        // from one uniform per row drawn here from the sequence's own generator: again only ids come back. Greedy
        // rows of such a step go with temperature 0 (the argmax of the penalised row) and draw nothing.
        int[] greedyIds = null;
        try {
            if (greedyStep) {
                greedyIds = backend.forwardGreedy(batch);
                checkGreedyIds(greedyIds, expectedRows);
            } else if (expectedRows > 0) {
                RowSamplingRoute route = RowSamplingRoute.of(chunks, expectedRows, vocabSize);
                greedyIds = backend.forwardSampled(batch, route.temperature, route.topK, route.topP, route.minP,
                        route.uniform, route.penalties);
                checkGreedyIds(greedyIds, expectedRows);
            } else {
                checkLogits(backend.forward(batch), 0);
            }
        } catch (Throwable t) {
            LOG.warn("forward step over {} sequences failed; failing them", chunks.size(), t);
            for (ScheduledChunk c : chunks) {
                fail(c.sequence(), "forward step failed: " + t, t);
            }
            return true;
        }
        long now = System.nanoTime();
        int row = 0;
        for (ScheduledChunk c : chunks) {
            Sequence seq = c.sequence();
            int sampleRow = c.samples() ? row++ : -1;
            if (seq.status() == SequenceStatus.FINISHED) {
                continue;
            }
            try {
                seq.advanceComputed(c.length());
                scheduler.cacheComputed(seq);
                if (sampleRow >= 0) {
                    int token = greedyIds[sampleRow];
                    if (token < 0) {  // what Sampler.sample throws for the same row
                        throw new IllegalStateException("logits row has no usable value (all NaN)");
                    }
                    deliverToken(seq, token, now);
                }
            } catch (RuntimeException e) {
                LOG.warn("request {} failed after a forward step", seq.requestId(), e);
                fail(seq, "sampling or output failed: " + e, e);
            }
        }
        return true;
    }

    private void checkGreedyIds(int[] ids, int expectedRows) {
        if (ids == null || ids.length != expectedRows) {
            throw new IllegalStateException("backend returned " + (ids == null ? "null" : ids.length)
                    + " greedy tokens, expected " + expectedRows);
        }
        for (int id : ids) {
            if (id < -1 || id >= vocabSize) {
                throw new IllegalStateException("backend returned greedy token " + id + ", outside the vocabulary [0, "
                        + vocabSize + ")");
            }
        }
    }

    private void checkLogits(List<float[]> logits, int expectedRows) {
        if (logits == null || logits.size() != expectedRows) {
            throw new IllegalStateException("backend returned " + (logits == null ? "null" : logits.size())
                    + " logit rows, expected " + expectedRows);
        }
        for (float[] row : logits) {
            if (row == null || row.length != vocabSize) {
                throw new IllegalStateException("backend returned a logit row of " + (row == null ? "null" : row.length)
                        + " entries, expected " + vocabSize);
            }
        }
    }

    /** Records a sampled token, tells the listener, and finishes the sequence when it is done. */
    private void deliverToken(Sequence seq, int token, long now) {
        Sequence.TokenOutcome outcome = seq.appendToken(token, now);
        tokensGenerated.incrementAndGet();
        Handle h = live.get(seq);
        h.listener.onToken(new TokenEvent(seq.requestId(), token, outcome.textDelta(), seq.generatedCount() - 1));
        if (outcome.finish().isPresent()) {
            FinishReason reason = outcome.finish().get();
            int[] kept = scheduler.finish(seq, reason, System.nanoTime());
            requestsFinished.incrementAndGet();
            FinishEvent event = finishEvent(seq, kept);
            Handle done = retire(seq);
            try {
                done.listener.onFinish(event);
            } catch (RuntimeException e) {
                LOG.warn("listener of request {} threw from onFinish", seq.requestId(), e);
            }
            done.completion.complete(event);
        }
    }

    private void abortSequence(Sequence seq) {
        scheduler.finish(seq, FinishReason.ABORT, System.nanoTime());
        requestsAborted.incrementAndGet();
        FinishEvent event = finishEvent(seq, new int[0]);
        Handle h = retire(seq);
        try {
            h.listener.onFinish(event);
        } catch (RuntimeException e) {
            LOG.warn("listener of request {} threw from onFinish (abort)", seq.requestId(), e);
        }
        h.completion.complete(event);
    }

    /** Ends a sequence with an error: blocks freed, listener told; never throws. */
    private void fail(Sequence seq, String message, Throwable cause) {
        if (seq.status() == SequenceStatus.FINISHED || !live.containsKey(seq)) {
            return;
        }
        try {
            scheduler.finish(seq, FinishReason.ERROR, System.nanoTime());
        } catch (RuntimeException e) {
            LOG.error("could not release request {} after a failure", seq.requestId(), e);
        }
        requestsFailed.incrementAndGet();
        GenerationFailedException error = new GenerationFailedException(
                "request " + seq.requestId() + " failed: " + message, cause, finishEvent(seq, new int[0]));
        Handle h = retire(seq);
        try {
            h.listener.onError(error);
        } catch (RuntimeException e) {
            LOG.warn("listener of request {} threw from onError", seq.requestId(), e);
        }
        h.completion.completeExceptionally(error);
    }

    /** Forgets a finished sequence; returns its handle. */
    private Handle retire(Sequence seq) {
        Handle h = live.remove(seq);
        if (h.holdsQueueSlot) {
            h.holdsQueueSlot = false;
            queuedNew.decrementAndGet();
        }
        active.remove(seq.requestId(), h);
        // Before the terminal callback, so that whoever it wakes sees stats without this request.
        publishSnapshot();
        return h;
    }

    private FinishEvent finishEvent(Sequence seq, int[] keptBlocks) {
        long ttft = seq.firstTokenNanos() < 0 ? -1 : seq.firstTokenNanos() - seq.arrivalNanos();
        long end = seq.finishNanos() < 0 ? System.nanoTime() : seq.finishNanos();
        RequestTiming timing = new RequestTiming(ttft, end - seq.arrivalNanos(), seq.interTokenNanos());
        FinishReason reason = seq.finishReason() == null ? FinishReason.ERROR : seq.finishReason();
        int[] generated = seq.generatedTokens();
        return new FinishEvent(seq.requestId(), reason, seq.promptLength(), seq.generatedCount(),
                Arrays.copyOfRange(generated, seq.resumedCount(), generated.length), seq.text(), timing,
                seq.preemptions(), keptBlocks, seq.cachedPromptTokens());
    }

    private void publishSnapshot() {
        waitingSnapshot = scheduler.waitingCount();
        runningSnapshot = scheduler.runningCount();
        preemptions = scheduler.preemptions();
        prefixQueried = scheduler.prefixQueriedTokens();
        prefixHits = scheduler.prefixHitTokens();
    }

    private void checkDrained() {
        boolean draining;
        synchronized (lifecycle) {
            draining = state == State.DRAINING || state == State.CLOSED;
        }
        if (draining && active.isEmpty()) {
            drained.complete(null);
        }
    }
}
