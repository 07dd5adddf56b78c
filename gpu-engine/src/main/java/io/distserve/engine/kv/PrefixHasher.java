package io.distserve.engine.kv;

import java.nio.charset.StandardCharsets;

/**
 * The chained key of a full KV block: {@code key(i) = mix(key(i - 1), tokens of block i)}, starting from a salt that
 * stands for everything else that changes the block's K/V (the model, its dtype, the block size). Two sequences
 * whose first {@code i} blocks hold the same tokens get the same first {@code i} keys, in any engine with the same
 * salt: the proxy computes them from a request to find the engine that holds most of its prefix.
 *
 * <p>64 bits, not cryptographic: the engine never trusts a key alone (a hit also compares the block's tokens and
 * its parent, see {@link BlockManager#acquirePrefix}), so a collision costs a cache miss, never a wrong answer.
 */
public record PrefixHasher(long salt, int blockSize) {

    private static final long M = 0x9E3779B97F4A7C15L;

    public PrefixHasher {
        if (blockSize < 1) {
            throw new IllegalArgumentException("block size must be >= 1, got " + blockSize);
        }
    }

    /** A salt from the strings that identify what the KV contents depend on. */
    public static long salt(String identity) {
        long h = 0x5D1C0F3AB2E4A6C9L;
        for (byte b : identity.getBytes(StandardCharsets.UTF_8)) {
            h = fmix((h ^ (b & 0xFF)) * M);
        }
        return h;
    }

    /** The key of the block holding {@code tokens[from .. from + blockSize)} after a block keyed {@code parent}. */
    public long next(long parent, int[] tokens, int from) {
        long h = parent ^ (M * blockSize);
        for (int i = from, end = from + blockSize; i < end; i++) {
            h = Long.rotateLeft((h ^ tokens[i]) * M, 29) + 0x632BE59BD9B4E019L;
        }
        return fmix(h);
    }

    /** The keys of the first {@code blocks} full blocks of {@code tokens}. */
    public long[] keys(int[] tokens, int blocks) {
        if ((long) blocks * blockSize > tokens.length) {
            throw new IllegalArgumentException(blocks + " blocks of " + blockSize + " exceed " + tokens.length
                    + " tokens");
        }
        long[] keys = new long[blocks];
        long parent = salt;
        for (int i = 0; i < blocks; i++) {
            parent = next(parent, tokens, i * blockSize);
            keys[i] = parent;
        }
        return keys;
    }

    /** The keys of every full block of {@code tokens}. */
    public long[] keys(int[] tokens) {
        return keys(tokens, tokens.length / blockSize);
    }

    /** Murmur3's 64-bit finalizer: every input bit reaches every output bit. */
    private static long fmix(long h) {
        h ^= h >>> 33;
        h *= 0xFF51AFD7ED558CCDL;
        h ^= h >>> 33;
        h *= 0xC4CEB9FE1A85EC53L;
        h ^= h >>> 33;
        return h;
    }
}
