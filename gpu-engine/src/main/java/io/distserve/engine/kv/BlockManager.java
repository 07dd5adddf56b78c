package io.distserve.engine.kv;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Optional;

/**
 * The pool of KV cache block ids {@code 0 .. totalBlocks-1}, with a reference count per block, and (when built with
 * a {@link PrefixHasher}) the prefix cache: full blocks that keep their K/V after their sequence ends, found again
 * by their chained key.
 *
 * <p>A block is in one of three states:
 * <ul>
 *   <li><b>referenced</b> (count &gt; 0): owned by sequences, leases or migrations; {@link #incRef(int...)} adds an
 *       owner, {@link #free(int...)} drops one.</li>
 *   <li><b>cached</b> (count 0, registered): its K/V is that of a known prefix; a later {@link #acquirePrefix} takes
 *       it back with count one. It is evicted, least recently released first, only when {@link #allocate(int)}
 *       finds no free block.</li>
 *   <li><b>free</b> (count 0, not registered).</li>
 * </ul>
 * A registered block is never written: only full, computed blocks are registered ({@link #register}), and a
 * sequence writes only beyond them. Cached blocks count as free capacity ({@link #freeCount()}): holding them costs
 * no request anything.
 *
 * <p>Thread-safe: the engine loop allocates, registers and frees, while HTTP threads may release leased blocks
 * (free_cache), or allocate blocks and take cached ones for an incoming migration. Every method holds the monitor
 * for its whole duration, so a multi-block operation is atomic: it either applies to all ids or, when one id is
 * invalid, to none.
 */
public final class BlockManager {

    /** Blocks taken from the cache by {@link #acquirePrefix}, and the registration serial of the last one. */
    public record PrefixHit(int[] blocks, long lastSerial) {
        public static final PrefixHit NONE = new PrefixHit(new int[0], 0);
    }

    /** How many cache events a reader may fall behind before it gets a snapshot instead. */
    private static final int EVENT_WINDOW = 1 << 16;

    private final int totalBlocks;
    private final int[] refCounts;
    /** FIFO so that a freed block is reused as late as possible: stale-table bugs then read wrong data in tests. */
    private final ArrayDeque<Integer> freeList;
    private final PrefixHasher hasher;

    // The prefix cache (unused without a hasher). A registered block has a serial > 0, unique over the pool's life;
    // a block's parent serial names the exact block (and registration) before it in its sequence, so a hit walks an
    // exact chain even if two keys collide or a parent was evicted and its id reused.
    private final long[] keys;
    private final long[] serials;
    private final long[] parentSerials;
    private final int[][] blockTokens;
    private final Map<Long, Integer> byKey = new HashMap<>();
    /** Cached blocks with count 0, least recently released first: the eviction order. */
    private final LinkedHashSet<Integer> evictable = new LinkedHashSet<>();
    private final PrefixCacheEvents events = new PrefixCacheEvents(EVENT_WINDOW);
    private long nextSerial = 1;
    private long evictions;

    /** A pool without a prefix cache: a block's K/V is gone when its last reference is. */
    public BlockManager(int totalBlocks) {
        this(totalBlocks, null);
    }

    /** A pool whose full blocks stay cached after use, keyed by {@code hasher} (null: no cache). */
    public BlockManager(int totalBlocks, PrefixHasher hasher) {
        if (totalBlocks < 0) {
            throw new IllegalArgumentException("totalBlocks must be >= 0, got " + totalBlocks);
        }
        this.totalBlocks = totalBlocks;
        this.refCounts = new int[totalBlocks];
        this.freeList = new ArrayDeque<>(Math.max(1, totalBlocks));
        for (int b = 0; b < totalBlocks; b++) {
            freeList.addLast(b);
        }
        this.hasher = hasher;
        int cached = hasher == null ? 0 : totalBlocks;
        this.keys = new long[cached];
        this.serials = new long[cached];
        this.parentSerials = new long[cached];
        this.blockTokens = new int[cached][];
    }

    /** The cache's key function, when this pool caches prefixes. */
    public Optional<PrefixHasher> prefixHasher() {
        return Optional.ofNullable(hasher);
    }

    public boolean cachesPrefixes() {
        return hasher != null;
    }

    /**
     * Takes {@code n} blocks, all or nothing: free ones first, then cached ones, least recently used first (their
     * keys leave the cache).
     *
     * @return the ids (each with reference count one), or empty when fewer than {@code n} are free or cached
     */
    public synchronized Optional<int[]> allocate(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("cannot allocate " + n + " blocks");
        }
        if (n > freeList.size() + evictable.size()) {
            return Optional.empty();
        }
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            Integer b = freeList.pollFirst();
            if (b == null) {
                Iterator<Integer> oldest = evictable.iterator();
                b = oldest.next();
                oldest.remove();
                unregister(b);
                evictions++;
            }
            refCounts[b] = 1;
            ids[i] = b;
        }
        return Optional.of(ids);
    }

    /** True when {@link #allocate(int)} of {@code n} would succeed right now. */
    public synchronized boolean canAllocate(int n) {
        return n <= freeList.size() + evictable.size();
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
     * Drops one reference from each id; a block whose count reaches zero becomes cached (when registered) or free.
     * An id may appear several times (once per reference dropped). Blocks are released last to first, so that the
     * tail of a sequence is evicted before its head, which more requests share.
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
        for (int i = blocks.length - 1; i >= 0; i--) {
            int b = blocks[i];
            if (--refCounts[b] == 0) {
                if (isRegistered(b)) {
                    evictable.add(b);
                } else {
                    freeList.addLast(b);
                }
            }
        }
    }

    /** Same as {@link #free(int...)}; the name reads better where a shared block loses one owner. */
    public void decRef(int... blocks) {
        free(blocks);
    }

    /**
     * Takes the longest cached prefix of a sequence: block {@code i} matches when a registered block has key
     * {@code keys[i]}, holds exactly {@code tokens[i*bs .. (i+1)*bs)}, and was registered after the block matched
     * for {@code i - 1} (its parent serial is that block's serial). Each matched block gets one reference for the
     * caller, who frees it like any other.
     *
     * @param keys      the sequence's block keys ({@link PrefixHasher#keys})
     * @param maxBlocks how many blocks may match at most
     */
    public synchronized PrefixHit acquirePrefix(long[] keys, int[] tokens, int maxBlocks) {
        if (hasher == null) {
            return PrefixHit.NONE;
        }
        int bs = hasher.blockSize();
        int limit = Math.min(Math.min(maxBlocks, keys.length), tokens.length / bs);
        int[] hit = new int[Math.max(0, limit)];
        int n = 0;
        long parent = 0;
        while (n < limit) {
            Integer b = byKey.get(keys[n]);
            if (b == null || parentSerials[b] != parent
                    || !Arrays.equals(blockTokens[b], 0, bs, tokens, n * bs, (n + 1) * bs)) {
                break;
            }
            hit[n++] = b;
            parent = serials[b];
        }
        for (int i = 0; i < n; i++) {
            int b = hit[i];
            if (refCounts[b]++ == 0) {
                evictable.remove(b);
            }
        }
        return n == 0 ? PrefixHit.NONE : new PrefixHit(Arrays.copyOf(hit, n), parent);
    }

    /**
     * Registers a full, computed block of a sequence in the cache: its K/V is that of {@code tokens[from .. from+bs)}
     * after the block registered as {@code parentSerial} (0 for a sequence's first block). The caller must hold a
     * reference and never write the block again.
     *
     * @return the serial to chain the sequence's next block to: the block's own, or that of an identical block already
     *         cached (this one then stays uncached and is freed as usual); -1 when the key is taken by a different
     *         block (a collision: the sequence's later blocks cannot be cached)
     */
    public synchronized long register(int block, long key, int[] tokens, int from, long parentSerial) {
        if (hasher == null) {
            return -1;
        }
        checkKnown(block);
        if (refCounts[block] == 0) {
            throw new IllegalStateException("register of free KV block " + block);
        }
        int bs = hasher.blockSize();
        if (isRegistered(block)) {
            return keys[block] == key && parentSerials[block] == parentSerial ? serials[block] : -1;
        }
        Integer existing = byKey.get(key);
        if (existing != null) {
            boolean same = parentSerials[existing] == parentSerial
                    && Arrays.equals(blockTokens[existing], 0, bs, tokens, from, from + bs);
            return same ? serials[existing] : -1;
        }
        keys[block] = key;
        serials[block] = nextSerial++;
        parentSerials[block] = parentSerial;
        blockTokens[block] = Arrays.copyOfRange(tokens, from, from + bs);
        byKey.put(key, block);
        events.stored(key);
        return serials[block];
    }

    /** The cache's changes since {@code cursor} (see {@link PrefixCacheDelta}). */
    public synchronized PrefixCacheDelta cacheChangesSince(long cursor) {
        return events.since(cursor, byKey.keySet());
    }

    private void unregister(int b) {
        byKey.remove(keys[b]);
        events.removed(keys[b]);
        serials[b] = 0;
        parentSerials[b] = 0;
        blockTokens[b] = null;
    }

    private boolean isRegistered(int b) {
        return hasher != null && serials[b] != 0;
    }

    /** The block's current reference count (0 = free or cached). */
    public synchronized int refCount(int block) {
        checkKnown(block);
        return refCounts[block];
    }

    /** Blocks {@link #allocate(int)} can hand out: the free ones and the cached ones. */
    public synchronized int freeCount() {
        return freeList.size() + evictable.size();
    }

    /** Blocks with a reference. */
    public synchronized int usedCount() {
        return totalBlocks - freeList.size() - evictable.size();
    }

    /** Blocks whose K/V is in the cache, referenced or not. */
    public synchronized int cachedCount() {
        return byKey.size();
    }

    /** Cached blocks nobody references (evicted first when blocks run out). */
    public synchronized int evictableCount() {
        return evictable.size();
    }

    /** Cached blocks taken for new contents since start. */
    public synchronized long evictions() {
        return evictions;
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
        return "BlockManager[" + usedCount() + "/" + totalBlocks + " used, " + byKey.size() + " cached]";
    }
}
