package io.distserve.engine.sched;

import io.distserve.engine.kv.BlockTable;
import io.distserve.engine.kv.PrefixHasher;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.sampling.StopChecker;
import io.distserve.engine.tokenizer.IncrementalDetokenizer;
import io.distserve.engine.tokenizer.TextTokenizer;
import java.util.Arrays;
import java.util.Collection;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.random.RandomGenerator;

/**
 * One request's generation state: its tokens (prompt then generated), how many of them have K/V in the cache, its
 * block table, and the per-sequence output machinery (random generator, detokenizer, stop checker, timing).
 *
 * <p>Owned by the engine loop: not thread-safe. Status transitions are made by the {@link Scheduler}; the engine
 * feeds sampled tokens through {@link #appendToken(int, long)}.
 */
public final class Sequence {

    /** What appending one token produced. */
    public record TokenOutcome(String textDelta, Optional<FinishReason> finish) {
    }

    private final long id;
    private final String requestId;
    private final int promptLength;
    private final SamplingParams params;
    private final long arrivalOrder;
    private final long arrivalNanos;
    private final boolean keepBlocksOnFinish;
    private final RandomGenerator rng;
    private final IncrementalDetokenizer detokenizer;
    private final StopChecker stopChecker;
    private final BlockTable blockTable;
    private final StringBuilder text = new StringBuilder();

    private int[] tokens;
    private int length;
    private int numComputed;
    private SequenceStatus status = SequenceStatus.WAITING;
    private FinishReason finishReason;
    private int preemptions;
    private long firstTokenNanos = -1;
    private long lastTokenNanos = -1;
    private long finishNanos = -1;
    private long[] interTokenNanos = new long[16];
    private int interTokenCount;

    // Prefix caching (see PrefixCaching): the keys of the full blocks computed so far (they depend only on the
    // tokens, which only grow), how many leading blocks of the table are registered in the cache, the serial to
    // chain the next one to, and whether a key collision ended caching for this sequence.
    private long[] blockKeys = new long[0];
    private int blockKeyCount;
    private int registeredBlocks;
    private long chainSerial;
    private boolean uncacheable;
    /** Prompt tokens whose K/V came from the cache at the first admission (what usage reports). */
    private int cachedPromptTokens;
    /** Leading generated tokens that were resumed, not sampled here (their text was delivered elsewhere). */
    private int resumedCount;

    private Sequence(long id, String requestId, int[] prompt, SamplingParams params, long arrivalOrder,
            long arrivalNanos, boolean keepBlocksOnFinish, TextTokenizer tokenizer, Collection<Integer> eosIds,
            BlockTable blockTable, int numComputed) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("empty prompt");
        }
        this.id = id;
        this.requestId = requestId;
        this.promptLength = prompt.length;
        this.params = params;
        this.arrivalOrder = arrivalOrder;
        this.arrivalNanos = arrivalNanos;
        this.keepBlocksOnFinish = keepBlocksOnFinish;
        // A seed makes the whole sampled stream reproducible: the generator is private to this sequence and only
        // advanced by its own draws, so it does not depend on the batch.
        this.rng = params.seed() != null ? new SplittableRandom(params.seed()) : new SplittableRandom();
        this.detokenizer = new IncrementalDetokenizer(tokenizer, params.skipSpecialTokens(), prompt);
        this.stopChecker = new StopChecker(params, eosIds);
        this.tokens = Arrays.copyOf(prompt, prompt.length + Math.min(params.maxTokens(), 256));
        this.length = prompt.length;
        this.blockTable = blockTable;
        this.numComputed = numComputed;
    }

    /** A new sequence: nothing computed, no blocks. */
    public static Sequence create(long id, String requestId, int[] prompt, SamplingParams params, long arrivalOrder,
            long arrivalNanos, boolean keepBlocksOnFinish, TextTokenizer tokenizer, Collection<Integer> eosIds) {
        return new Sequence(id, requestId, prompt, params, arrivalOrder, arrivalNanos, keepBlocksOnFinish, tokenizer,
                eosIds, new BlockTable(), 0);
    }

    /**
     * A sequence whose prompt K/V is already in {@code blocks} (e.g. migrated from a prefill engine). The caller
     * hands the block references over to the sequence. Its first generated token is added with
     * {@link #appendToken(int, long)} before scheduling, like any sampled token.
     */
    public static Sequence prefilled(long id, String requestId, int[] prompt, SamplingParams params,
            long arrivalOrder, long arrivalNanos, TextTokenizer tokenizer, Collection<Integer> eosIds, int[] blocks,
            int blockSize) {
        return prefilled(id, requestId, prompt, params, arrivalOrder, arrivalNanos, tokenizer, eosIds, blocks,
                blockSize, new int[0]);
    }

    /**
     * A prefilled sequence whose answer had begun elsewhere: {@code blocks} hold the K/V of the prompt and of the
     * {@code resumed} tokens after it (a broken DistServe stream prefilled again, then migrated), and those tokens
     * are taken as already generated and delivered, as {@link #resume} takes them.
     *
     * @throws IllegalArgumentException the block count does not fit, or the resumed tokens already end the answer
     */
    public static Sequence prefilled(long id, String requestId, int[] prompt, SamplingParams params,
            long arrivalOrder, long arrivalNanos, TextTokenizer tokenizer, Collection<Integer> eosIds, int[] blocks,
            int blockSize, int[] resumed) {
        int kvTokens = prompt.length + resumed.length;
        int needed = (kvTokens + blockSize - 1) / blockSize;
        if (blocks.length != needed) {
            throw new IllegalArgumentException("a prefilled prompt of " + kvTokens + " tokens needs " + needed
                    + " blocks of " + blockSize + ", got " + blocks.length);
        }
        Sequence seq = new Sequence(id, requestId, prompt, params, arrivalOrder, arrivalNanos, false, tokenizer,
                eosIds, new BlockTable(blocks), prompt.length);
        seq.replay(resumed);
        seq.numComputed = kvTokens;
        return seq;
    }

    /**
     * Takes the answer's first tokens as already generated and delivered elsewhere: they pass through the
     * detokenizer and the stop checker (so text held back at their end, or a stop string begun in them, comes out as
     * it would have), but their text is not produced again. Before any sampled token; their K/V is computed with the
     * prompt's (the sequence starts with nothing computed).
     *
     * @throws IllegalArgumentException when they already end the answer (a stop token or string, or max_tokens)
     */
    public void resume(int[] generated) {
        if (length != promptLength || status != SequenceStatus.WAITING || numComputed != 0) {
            throw new IllegalStateException("resume of a sequence that has started: " + this);
        }
        replay(generated);
    }

    /** Takes {@code generated} as the answer's first tokens, delivered elsewhere (see {@link #resume}). */
    private void replay(int[] generated) {
        for (int i = 0; i < generated.length; i++) {
            int token = generated[i];
            if (length == tokens.length) {
                tokens = Arrays.copyOf(tokens, tokens.length * 2);
            }
            tokens[length++] = token;
            boolean ends;
            if (stopChecker.isStopToken(token)) {
                ends = true;
            } else {
                StopChecker.TextStep step = stopChecker.acceptText(detokenizer.next(token));
                ends = step.stopped() || stopChecker.reachedLimit(generatedCount());
            }
            if (ends) {
                throw new IllegalArgumentException("the resumed tokens already end the answer (at token " + i
                        + " of " + generated.length + ")");
            }
        }
        resumedCount = generated.length;
    }

    /** Leading generated tokens taken by {@link #resume}. */
    public int resumedCount() {
        return resumedCount;
    }

    /**
     * Records a sampled token: advances the detokenizer and the stop checker and returns the text that may be
     * streamed now and, if the sequence is done, why. EOS and stop ids are kept in the token list but add no text.
     */
    public TokenOutcome appendToken(int token, long nowNanos) {
        if (status == SequenceStatus.FINISHED) {
            throw new IllegalStateException("token appended to finished sequence " + this);
        }
        if (length == tokens.length) {
            tokens = Arrays.copyOf(tokens, tokens.length * 2);
        }
        tokens[length++] = token;
        recordTiming(nowNanos);
        StringBuilder delta = new StringBuilder();
        FinishReason finish = null;
        if (stopChecker.isStopToken(token)) {
            finish = FinishReason.STOP;
            flushText(delta);
        } else {
            StopChecker.TextStep step = stopChecker.acceptText(detokenizer.next(token));
            delta.append(step.emit());
            if (step.stopped()) {
                finish = FinishReason.STOP;
            } else if (stopChecker.reachedLimit(generatedCount())) {
                finish = FinishReason.LENGTH;
                flushText(delta);
            }
        }
        text.append(delta);
        return new TokenOutcome(delta.toString(), Optional.ofNullable(finish));
    }

    /** Releases text held back for a split character or a possible stop string, when the sequence ends. */
    private void flushText(StringBuilder delta) {
        StopChecker.TextStep last = stopChecker.acceptText(detokenizer.flush());
        delta.append(last.emit());
        delta.append(stopChecker.flush());
    }

    private void recordTiming(long nowNanos) {
        if (firstTokenNanos < 0) {
            firstTokenNanos = nowNanos;
        } else {
            if (interTokenCount == interTokenNanos.length) {
                interTokenNanos = Arrays.copyOf(interTokenNanos, interTokenCount * 2);
            }
            interTokenNanos[interTokenCount++] = nowNanos - lastTokenNanos;
        }
        lastTokenNanos = nowNanos;
    }

    /** Marks {@code n} more positions as computed (their K/V written) after a successful forward step. */
    public void advanceComputed(int n) {
        if (n < 1 || numComputed + n > length) {
            throw new IllegalStateException("cannot advance " + this + " by " + n);
        }
        numComputed += n;
    }

    // --- transitions, made by the scheduler ---

    void markRunning() {
        requireStatus(SequenceStatus.WAITING);
        status = SequenceStatus.RUNNING;
    }

    /** Back to waiting for recompute: all K/V is gone, the tokens (prompt and generated) are kept. */
    void markPreempted() {
        requireStatus(SequenceStatus.RUNNING);
        status = SequenceStatus.WAITING;
        numComputed = 0;
        registeredBlocks = 0;
        chainSerial = 0;
        preemptions++;
    }

    // --- prefix caching, by the scheduler ---

    /** The key of full block {@code i} (computing the keys before it as needed). */
    long blockKey(int i, PrefixHasher hasher) {
        if (i >= blockKeyCount) {
            if ((long) (i + 1) * hasher.blockSize() > length) {
                throw new IllegalArgumentException("block " + i + " of " + this + " is not full");
            }
            if (i >= blockKeys.length) {
                blockKeys = Arrays.copyOf(blockKeys, Math.max(i + 1, blockKeys.length * 2));
            }
            long parent = blockKeyCount == 0 ? hasher.salt() : blockKeys[blockKeyCount - 1];
            for (int b = blockKeyCount; b <= i; b++) {
                parent = hasher.next(parent, tokens, b * hasher.blockSize());
                blockKeys[b] = parent;
            }
            blockKeyCount = i + 1;
        }
        return blockKeys[i];
    }

    /** The keys of the first {@code n} full blocks. */
    long[] blockKeys(int n, PrefixHasher hasher) {
        if (n > 0) {
            blockKey(n - 1, hasher);
        }
        return Arrays.copyOf(blockKeys, n);
    }

    /** Starts the (empty) block table with cached blocks: their {@code tokens} positions count as computed. */
    void adoptCachedPrefix(int[] blocks, long lastSerial, int tokens) {
        requireStatus(SequenceStatus.WAITING);
        if (!blockTable.isEmpty() || numComputed != 0 || tokens >= length) {
            throw new IllegalStateException("cannot adopt a cached prefix of " + tokens + " tokens into " + this);
        }
        blockTable.append(blocks);
        numComputed = tokens;
        registeredBlocks = blocks.length;
        chainSerial = lastSerial;
    }

    /** Undoes {@link #adoptCachedPrefix}: returns the table's blocks (the caller frees them). */
    int[] dropAdoptedPrefix() {
        requireStatus(SequenceStatus.WAITING);
        numComputed = 0;
        registeredBlocks = 0;
        chainSerial = 0;
        return blockTable.clear();
    }

    void recordCachedPromptTokens(int tokens) {
        cachedPromptTokens = Math.min(tokens, promptLength);
    }

    int registeredBlocks() {
        return registeredBlocks;
    }

    long chainSerial() {
        return chainSerial;
    }

    void markRegistered(int blocks, long serial) {
        registeredBlocks = blocks;
        chainSerial = serial;
    }

    boolean uncacheable() {
        return uncacheable;
    }

    void markUncacheable() {
        uncacheable = true;
    }

    void markFinished(FinishReason reason, long nowNanos) {
        if (status == SequenceStatus.FINISHED) {
            throw new IllegalStateException("sequence finished twice: " + this);
        }
        status = SequenceStatus.FINISHED;
        finishReason = reason;
        finishNanos = nowNanos;
    }

    private void requireStatus(SequenceStatus expected) {
        if (status != expected) {
            throw new IllegalStateException("sequence " + this + " is " + status + ", expected " + expected);
        }
    }

    // --- accessors ---

    public long id() {
        return id;
    }

    public String requestId() {
        return requestId;
    }

    public SamplingParams params() {
        return params;
    }

    public long arrivalOrder() {
        return arrivalOrder;
    }

    public SequenceStatus status() {
        return status;
    }

    /** Null until finished. */
    public FinishReason finishReason() {
        return finishReason;
    }

    public boolean keepBlocksOnFinish() {
        return keepBlocksOnFinish;
    }

    public RandomGenerator rng() {
        return rng;
    }

    public BlockTable blockTable() {
        return blockTable;
    }

    public int promptLength() {
        return promptLength;
    }

    /** Prompt plus generated tokens. */
    public int length() {
        return length;
    }

    public int generatedCount() {
        return length - promptLength;
    }

    public int numComputed() {
        return numComputed;
    }

    /** Positions whose K/V still has to be computed (1 for a sequence that is decoding). */
    public int remaining() {
        return length - numComputed;
    }

    /** The backing token array (valid up to {@link #length()}); read-only, for the sampler's history. */
    public int[] tokenBuffer() {
        return tokens;
    }

    public int[] tokens(int from, int to) {
        if (from < 0 || to > length || from > to) {
            throw new IndexOutOfBoundsException("tokens [" + from + ", " + to + ") of " + length);
        }
        return Arrays.copyOfRange(tokens, from, to);
    }

    public int[] promptTokens() {
        return Arrays.copyOf(tokens, promptLength);
    }

    public int[] generatedTokens() {
        return Arrays.copyOfRange(tokens, promptLength, length);
    }

    /** The text streamed so far (the full output once finished). */
    public String text() {
        return text.toString();
    }

    public int preemptions() {
        return preemptions;
    }

    /** Prompt tokens whose K/V came from the prefix cache when the sequence was first admitted. */
    public int cachedPromptTokens() {
        return cachedPromptTokens;
    }

    public long arrivalNanos() {
        return arrivalNanos;
    }

    /** -1 until the first token. */
    public long firstTokenNanos() {
        return firstTokenNanos;
    }

    /** -1 until finished. */
    public long finishNanos() {
        return finishNanos;
    }

    /** Gaps between consecutive generated tokens (one fewer than the tokens). */
    public long[] interTokenNanos() {
        return Arrays.copyOf(interTokenNanos, interTokenCount);
    }

    @Override
    public String toString() {
        return "Sequence[" + id + " " + requestId + " " + status + " len=" + length + " computed=" + numComputed
                + " blocks=" + blockTable.size() + "]";
    }
}
