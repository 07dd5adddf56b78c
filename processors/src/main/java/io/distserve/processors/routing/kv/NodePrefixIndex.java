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
 */
public final class NodePrefixIndex {

    private final Set<Long> keys = ConcurrentHashMap.newKeySet();
    private volatile String epoch;
    private volatile long cursor = -1;
    private volatile PrefixHasher hasher;
    private volatile int blocksUsed;
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
        PrefixHasher h = null;
        if (enabled) {
            int bs = feed.path("block_size").asInt(0);
            String salt = feed.path("hash_salt").asText("");
            if (bs < 1 || salt.isEmpty()) {
                throw new IllegalArgumentException("prefix-cache feed without block_size / hash_salt");
            }
            h = new PrefixHasher(Long.parseUnsignedLong(salt, 16), bs);
        }
        String newEpoch = feed.path("epoch").asText();
        if (feed.path("reset").asBoolean(false) || !newEpoch.equals(epoch)) {
            keys.clear();
        }
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
        blocksTotal = feed.path("blocks_total").asInt(0);
        updatedNanos = nowNanos;
    }

    /** How many leading blocks of a prompt with these keys (under {@link #hasher()}) the engine holds. */
    public int overlapBlocks(long[] promptKeys) {
        int n = 0;
        while (n < promptKeys.length && keys.contains(promptKeys[n])) {
            n++;
        }
        return n;
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
