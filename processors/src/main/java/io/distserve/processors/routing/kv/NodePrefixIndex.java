package io.distserve.processors.routing.kv;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.engine.kv.PrefixHasher;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What the proxy knows of one engine's prefix cache: the block keys it holds, the key function they were made
 * with, and its KV load, as of the last poll of its {@code /distserve/prefix_cache} feed. Written by the poller
 * thread, read by routing threads: a read may see a slightly older set, which costs at most a cache miss, since
 * the engine checks every hit against the tokens themselves.
 *
 * <p>Besides what the feed said, the index holds what the proxy expects: the blocks of a request it has just sent
 * to the node, which the node will hold once it has prefilled them, before its feed can say so. They count for a
 * short while ({@link #expect}); so a burst of requests sharing a prefix goes to one node from the first request on,
 * instead of spreading until the next poll.
 */
public final class NodePrefixIndex {

    private final Set<Long> keys = ConcurrentHashMap.newKeySet();
    /** Keys the proxy expects the node to hold soon, with the nano time until which they count. */
    private final ConcurrentHashMap<Long, Long> expected = new ConcurrentHashMap<>();
    private volatile String epoch;
    private volatile long cursor = -1;
    private volatile PrefixHasher hasher;
    private volatile int blocksUsed;
    private volatile int blockSize = 1;
    private volatile int blocksTotal;
    private volatile long updatedNanos;

    /**
     * Applies one answer of the feed (see {@code ControlEndpoints.prefixCache}).
     *
     * @throws IllegalArgumentException when the answer is not the feed's shape (the caller drops the index)
     */
    public void apply(JsonNode feed, long nowNanos) {
        if (!feed.path("next").canConvertToLong() || !feed.path("epoch").isTextual()) {
            throw new IllegalArgumentException("not a prefix-cache feed: " + abbreviate(feed.toString()));
        }
        boolean enabled = feed.path("enabled").asBoolean(false);
        int bs = feed.path("block_size").asInt(0);
        if (bs < 1) {
            throw new IllegalArgumentException("prefix-cache feed without block_size");
        }
        PrefixHasher h = null;
        if (enabled) {
            String salt = feed.path("hash_salt").asText("");
            if (salt.isEmpty()) {
                throw new IllegalArgumentException("prefix-cache feed without hash_salt");
            }
            h = new PrefixHasher(Long.parseUnsignedLong(salt, 16), bs);
        }
        String newEpoch = feed.path("epoch").asText();
        if (feed.path("reset").asBoolean(false) || !newEpoch.equals(epoch)) {
            keys.clear();
            if (epoch != null && !newEpoch.equals(epoch)) {
                expected.clear(); // a restarted engine holds nothing of what was sent to its predecessor
            }
        }
        expected.values().removeIf(until -> until - nowNanos < 0);
        for (JsonNode k : feed.path("stored")) {
            keys.add(Long.parseUnsignedLong(k.asText(), 16));
        }
        for (JsonNode k : feed.path("removed")) {
            keys.remove(Long.parseUnsignedLong(k.asText(), 16));
        }
        hasher = h;
        epoch = newEpoch;
        cursor = feed.path("next").asLong();
        blocksUsed = feed.path("blocks_used").asInt(0);
        blockSize = bs;
        blocksTotal = feed.path("blocks_total").asInt(0);
        updatedNanos = nowNanos;
    }

    /** How many leading blocks of a prompt with these keys (under {@link #hasher()}) the engine holds. */
    public int overlapBlocks(long[] promptKeys) {
        return overlapBlocks(promptKeys, System.nanoTime());
    }

    /** As {@link #overlapBlocks(long[])}, counting the expected keys still valid at {@code nowNanos}. */
    public int overlapBlocks(long[] promptKeys, long nowNanos) {
        int n = 0;
        while (n < promptKeys.length && holds(promptKeys[n], nowNanos)) {
            n++;
        }
        return n;
    }

    private boolean holds(long key, long nowNanos) {
        if (keys.contains(key)) {
            return true;
        }
        Long until = expected.get(key);
        return until != null && until - nowNanos > 0;
    }

    /**
     * The proxy has sent a prompt with these keys to the node: count them as held until {@code untilNanos}, by
     * when the node's feed has said whether it holds them.
     */
    public void expect(long[] promptKeys, long untilNanos) {
        for (long k : promptKeys) {
            expected.merge(k, untilNanos, Math::max);
        }
    }

    /** The engine's key function; null when its prefix cache is off (or before the first poll). */
    public PrefixHasher hasher() {
        return hasher;
    }

    /** The feed's epoch to send back (the engine's id; null before the first poll). */
    public String epoch() {
        return epoch;
    }

    public long cursor() {
        return cursor;
    }

    public int keyCount() {
        return keys.size();
    }

    /** KV blocks referenced by running sequences and leases, as of the last poll. */
    public int blocksUsed() {
        return blocksUsed;
    }

    /** KV tokens referenced by running sequences and leases, as of the last poll (whether or not it caches). */
    public long tokensUsed() {
        return (long) blocksUsed * blockSize;
    }

    public int blocksTotal() {
        return blocksTotal;
    }

    public long updatedNanos() {
        return updatedNanos;
    }

    private static String abbreviate(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "...";
    }
}
