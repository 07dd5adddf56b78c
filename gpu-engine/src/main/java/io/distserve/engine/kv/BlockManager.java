package io.distserve.engine.kv;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The pool of KV cache block ids {@code 0 .. totalBlocks-1}, with a reference count per block.
 *
 * <p>A block is free when its count is zero. {@link #allocate(int)} hands out blocks with count one;
 * {@link #incRef(int)} adds an owner (a lease holder, a sequence sharing a prefix); {@link #free(int...)} drops one
 * reference per id and returns the block to the free list when the count reaches zero.
 *
 * <p>Thread-safe: the engine loop allocates and frees, while HTTP threads may release leased blocks (free_cache) or
 * allocate blocks for an incoming migration. Every method holds the monitor for its whole duration, so a multi-block
 * operation is atomic: it either applies to all ids or, when one id is invalid, to none.
 */
public final class BlockManager {

    private final int totalBlocks;
    private final int[] refCounts;
    /** FIFO so that a freed block is reused as late as possible: stale-table bugs then read wrong data in tests. */
    private final ArrayDeque<Integer> freeList;

    public BlockManager(int totalBlocks) {
        if (totalBlocks < 0) {
            throw new IllegalArgumentException("totalBlocks must be >= 0, got " + totalBlocks);
        }
        this.totalBlocks = totalBlocks;
        this.refCounts = new int[totalBlocks];
        this.freeList = new ArrayDeque<>(Math.max(1, totalBlocks));
        for (int b = 0; b < totalBlocks; b++) {
            freeList.addLast(b);
        }
    }

    /**
     * Takes {@code n} free blocks, all or nothing.
     *
     * @return the ids (each with reference count one), or empty when fewer than {@code n} are free
     */
    public synchronized Optional<int[]> allocate(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("cannot allocate " + n + " blocks");
        }
        if (n > freeList.size()) {
            return Optional.empty();
        }
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            int b = freeList.pollFirst();
            refCounts[b] = 1;
            ids[i] = b;
        }
        return Optional.of(ids);
    }

    /** True when {@link #allocate(int)} of {@code n} would succeed right now. */
    public synchronized boolean canAllocate(int n) {
        return n <= freeList.size();
    }

    /**
     * Adds one reference to each block (which must be in use).
     *
     * @throws IllegalStateException naming the first block that is free or unknown; no count is changed then
     */
    public synchronized void incRef(int... blocks) {
        for (int b : blocks) {
            checkKnown(b);
            if (refCounts[b] == 0) {
                throw new IllegalStateException("incRef of free KV block " + b);
            }
        }
        for (int b : blocks) {
            refCounts[b]++;
        }
    }

    /**
     * Drops one reference from each id; a block whose count reaches zero goes back to the free list. An id may appear
     * several times (once per reference dropped).
     *
     * @throws IllegalStateException naming the block when an id is unknown or would be freed more often than it is
     *         referenced (a double free: a programming error); no count is changed then
     */
    public synchronized void free(int... blocks) {
        // Validate the whole request first so that a bad id leaves the pool untouched.
        Map<Integer, Integer> drops = new HashMap<>();
        for (int b : blocks) {
            checkKnown(b);
            int dropped = drops.merge(b, 1, Integer::sum);
            if (dropped > refCounts[b]) {
                throw new IllegalStateException("double free of KV block " + b + " (reference count "
                        + refCounts[b] + ")");
            }
        }
        for (int b : blocks) {
            if (--refCounts[b] == 0) {
                freeList.addLast(b);
            }
        }
    }

    /** Same as {@link #free(int...)}; the name reads better where a shared block loses one owner. */
    public void decRef(int... blocks) {
        free(blocks);
    }

    /** The block's current reference count (0 = free). */
    public synchronized int refCount(int block) {
        checkKnown(block);
        return refCounts[block];
    }

    public synchronized int freeCount() {
        return freeList.size();
    }

    public synchronized int usedCount() {
        return totalBlocks - freeList.size();
    }

    public int totalBlocks() {
        return totalBlocks;
    }

    private void checkKnown(int b) {
        if (b < 0 || b >= totalBlocks) {
            throw new IllegalStateException("unknown KV block " + b + " (pool has " + totalBlocks + ")");
        }
    }

    @Override
    public synchronized String toString() {
        return "BlockManager[" + usedCount() + "/" + totalBlocks + " used]";
    }
}
