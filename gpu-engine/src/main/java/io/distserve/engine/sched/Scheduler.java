package io.distserve.engine.sched;

import io.distserve.engine.kv.BlockManager;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Continuous batching, one decision per engine step. Owned by the engine loop: not thread-safe.
 *
 * <p>Policy of {@link #schedule()}, in three passes under a token budget ({@code maxBatchedTokens}):
 * <ol>
 *   <li><b>decode</b>: every running sequence that is decoding gets its next token, oldest first. When its next
 *       position needs a block and none is free, the youngest running sequence not yet scheduled in this step is
 *       preempted (recompute: blocks freed, back to the front of the waiting queue with its generated tokens); that
 *       may be the sequence itself.</li>
 *   <li><b>prefill continuation</b>: running sequences in the middle of a chunked prefill get their next chunk,
 *       oldest first, as far as the budget allows. Their blocks were all reserved at admission, so this pass never
 *       allocates and never preempts.</li>
 *   <li><b>admission</b>: waiting sequences, first come first served (preempted ones first, oldest first), while the
 *       budget, {@code maxRunning} and the free blocks allow. Admission reserves blocks for all of a sequence's
 *       current tokens, so a prefill admitted is a prefill that can finish; its first chunk is whatever budget is
 *       left (chunked prefill). The head of the queue blocks the rest (no overtaking), and nothing is admitted in a
 *       step that had to preempt. With a prefix cache, a sequence's table starts with the cached blocks of its
 *       longest known prefix, which count as computed ({@link PrefixCaching}).</li>
 * </ol>
 * Decodes go first so that a long prompt never stalls the sequences that are already streaming.
 */
public final class Scheduler {

    private final BlockManager blocks;
    private final int blockSize;
    private final int maxBatchedTokens;
    private final int maxRunning;
    private final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    /** Sorted by arrival order: the last one is the youngest, the first to be preempted. */
    private final List<Sequence> running = new ArrayList<>();
    /** Null when the block manager keeps no prefix cache. */
    private final PrefixCaching prefixCaching;
    private long preemptions;

    public Scheduler(BlockManager blocks, int blockSize, int maxBatchedTokens, int maxRunning) {
        if (blockSize < 1 || maxBatchedTokens < 1 || maxRunning < 1) {
            throw new IllegalArgumentException("blockSize, maxBatchedTokens and maxRunning must be >= 1");
        }
        this.blocks = blocks;
        this.blockSize = blockSize;
        this.maxBatchedTokens = maxBatchedTokens;
        this.maxRunning = maxRunning;
        this.prefixCaching = blocks.cachesPrefixes() ? new PrefixCaching(blocks) : null;
        if (prefixCaching != null && blocks.prefixHasher().get().blockSize() != blockSize) {
            throw new IllegalArgumentException("the prefix cache keys blocks of "
                    + blocks.prefixHasher().get().blockSize() + " tokens, the scheduler's are " + blockSize);
        }
    }

    /** Queues a new (or prefilled) sequence at the back of the waiting queue. */
    public void add(Sequence seq) {
        if (seq.status() != SequenceStatus.WAITING) {
            throw new IllegalStateException("only waiting sequences can be added: " + seq);
        }
        waiting.addLast(seq);
    }

    /** Decides the next step's batch. See the class comment for the policy. */
    public SchedulerOutput schedule() {
        List<ScheduledChunk> chunks = new ArrayList<>();
        List<Sequence> preempted = new ArrayList<>();
        Set<Sequence> scheduled = Collections.newSetFromMap(new IdentityHashMap<>());
        int budget = maxBatchedTokens;

        // Pass 1: decodes, oldest first.
        for (Sequence seq : new ArrayList<>(running)) {
            if (budget == 0) {
                break;
            }
            if (seq.status() != SequenceStatus.RUNNING || seq.remaining() != 1) {
                continue; // preempted earlier in this pass, or mid-prefill (pass 2)
            }
            if (reserveNextPosition(seq, scheduled, preempted)) {
                chunks.add(new ScheduledChunk(seq, seq.numComputed(), 1, true));
                scheduled.add(seq);
                budget--;
            }
        }

        // Pass 2: continue chunked prefills; their blocks are already reserved.
        for (Sequence seq : running) {
            if (budget == 0) {
                break;
            }
            if (scheduled.contains(seq) || seq.remaining() <= 1) {
                continue;
            }
            budget -= scheduleChunk(seq, budget, chunks, scheduled);
        }

        // Pass 3: admit waiting sequences, FCFS.
        if (preempted.isEmpty()) {
            while (budget > 0 && running.size() < maxRunning && !waiting.isEmpty()) {
                Sequence seq = waiting.peekFirst();
                int cached = prefixCaching == null ? 0 : prefixCaching.adopt(seq);
                int need = blocksFor(seq.length()) - seq.blockTable().size();
                if (need > 0) {
                    Optional<int[]> got = blocks.allocate(need);
                    if (got.isEmpty()) {
                        if (cached > 0) {
                            prefixCaching.giveBack(seq);
                        }
                        break; // head-of-line: later arrivals do not overtake it
                    }
                    seq.blockTable().append(got.get());
                }
                waiting.pollFirst();
                seq.markRunning();
                if (prefixCaching != null) {
                    prefixCaching.admitted(seq, cached);
                }
                insertByArrival(seq);
                budget -= scheduleChunk(seq, budget, chunks, scheduled);
            }
        }
        return new SchedulerOutput(chunks, preempted);
    }

    /**
     * Makes sure the block table covers the sequence's next position, preempting the youngest unscheduled running
     * sequences while no block is free.
     *
     * @return false when the sequence itself had to be preempted
     */
    private boolean reserveNextPosition(Sequence seq, Set<Sequence> scheduled, List<Sequence> preempted) {
        int need = blocksFor(seq.numComputed() + 1) - seq.blockTable().size();
        if (need <= 0) {
            return true;
        }
        while (true) {
            Optional<int[]> got = blocks.allocate(need);
            if (got.isPresent()) {
                seq.blockTable().append(got.get());
                return true;
            }
            Sequence victim = youngestUnscheduled(scheduled);
            preempt(victim);
            preempted.add(victim);
            if (victim == seq) {
                return false;
            }
        }
    }

    /** Schedules up to {@code budget} of the sequence's remaining tokens; returns how many. */
    private int scheduleChunk(Sequence seq, int budget, List<ScheduledChunk> chunks, Set<Sequence> scheduled) {
        int n = Math.min(seq.remaining(), budget);
        int end = seq.numComputed() + n;
        if (blocksFor(end) > seq.blockTable().size()) {
            throw new IllegalStateException("prefill chunk beyond reserved blocks: " + seq);
        }
        chunks.add(new ScheduledChunk(seq, seq.numComputed(), n, end == seq.length()));
        scheduled.add(seq);
        return n;
    }

    /** The running sequence with the latest arrival that this step has not scheduled (the caller is one). */
    private Sequence youngestUnscheduled(Set<Sequence> scheduled) {
        for (int i = running.size() - 1; i >= 0; i--) {
            Sequence s = running.get(i);
            if (!scheduled.contains(s)) {
                return s;
            }
        }
        throw new IllegalStateException("no preemptible sequence; the caller should have been one");
    }

    private void preempt(Sequence seq) {
        running.remove(seq);
        blocks.free(seq.blockTable().clear());
        seq.markPreempted();
        // Front of the queue: it arrived before everything still waiting that has not run yet. Victims are taken
        // youngest first, so the older ones end up in front.
        waiting.addFirst(seq);
        preemptions++;
    }

    private void insertByArrival(Sequence seq) {
        int i = Collections.binarySearch(running, seq, Comparator.comparingLong(Sequence::arrivalOrder));
        running.add(i < 0 ? -i - 1 : i, seq);
    }

    /**
     * Ends a sequence in any state (finished, aborted, failed) and takes it out of the queues.
     *
     * @return the block ids handed to the caller: those of a sequence that keeps its blocks on a normal finish
     *         (ownership passes to the caller, who frees them through the block manager later); otherwise the blocks
     *         are freed here and the result is empty
     */
    public int[] finish(Sequence seq, FinishReason reason, long nowNanos) {
        boolean removed = running.remove(seq) || waiting.remove(seq);
        if (!removed) {
            throw new IllegalStateException("finish of a sequence the scheduler does not hold: " + seq);
        }
        seq.markFinished(reason, nowNanos);
        int[] held = seq.blockTable().clear();
        if (reason.isNormal() && seq.keepBlocksOnFinish()) {
            return held;
        }
        blocks.free(held);
        return new int[0];
    }

    /**
     * After a forward step advanced the sequence: its blocks that are now completely computed join the prefix
     * cache (no-op without one).
     */
    public void cacheComputed(Sequence seq) {
        if (prefixCaching != null && seq.status() == SequenceStatus.RUNNING) {
            prefixCaching.registerComputed(seq);
        }
    }

    /** Prompt tokens of first admissions since start (the prefix cache's queries; 0 without a cache). */
    public long prefixQueriedTokens() {
        return prefixCaching == null ? 0 : prefixCaching.queriedTokens();
    }

    /** Of {@link #prefixQueriedTokens()}, those whose K/V came from the cache. */
    public long prefixHitTokens() {
        return prefixCaching == null ? 0 : prefixCaching.hitTokens();
    }

    /** True when the scheduler holds the sequence (waiting or running). */
    public boolean contains(Sequence seq) {
        return running.contains(seq) || waiting.contains(seq);
    }

    public boolean hasWork() {
        return !running.isEmpty() || !waiting.isEmpty();
    }

    public int waitingCount() {
        return waiting.size();
    }

    public int runningCount() {
        return running.size();
    }

    public long preemptions() {
        return preemptions;
    }

    /** Every sequence held, running first: for shutdown. */
    public List<Sequence> all() {
        List<Sequence> all = new ArrayList<>(running);
        all.addAll(waiting);
        return all;
    }

    public int blockSize() {
        return blockSize;
    }

    private int blocksFor(int tokens) {
        return (tokens + blockSize - 1) / blockSize;
    }
}
