package io.distserve.engine.sched;

import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.kv.PrefixHasher;

/**
 * The scheduler's side of automatic prefix caching: at admission a sequence's block table starts with the longest
 * cached prefix of its tokens, and after every step the blocks it has filled completely are registered, so that
 * later sequences (and this one, after a preemption) find them.
 *
 * <p>At most {@code length - 1} tokens come from the cache: the last one is always computed, because its logits
 * give the next token. That position then lies in a block of the sequence's own: a shared block is never written.
 * Owned by the engine loop.
 */
final class PrefixCaching {

    private final BlockManager blocks;
    private final PrefixHasher hasher;
    private final int blockSize;
    private long queriedTokens;
    private long hitTokens;

    PrefixCaching(BlockManager blocks) {
        this.blocks = blocks;
        this.hasher = blocks.prefixHasher().orElseThrow(() -> new IllegalArgumentException("no prefix cache"));
        this.blockSize = hasher.blockSize();
    }

    /**
     * Starts an empty block table with the cached prefix, each block with a reference of the sequence's.
     *
     * @return the tokens taken from the cache (0 when none)
     */
    int adopt(Sequence seq) {
        if (!seq.blockTable().isEmpty() || seq.numComputed() != 0 || seq.uncacheable()) {
            return 0;
        }
        int maxBlocks = (seq.length() - 1) / blockSize;
        if (maxBlocks == 0) {
            return 0;
        }
        BlockManager.PrefixHit hit = blocks.acquirePrefix(seq.blockKeys(maxBlocks, hasher), seq.tokenBuffer(),
                maxBlocks);
        if (hit.blocks().length == 0) {
            return 0;
        }
        int tokens = hit.blocks().length * blockSize;
        seq.adoptCachedPrefix(hit.blocks(), hit.lastSerial(), tokens);
        return tokens;
    }

    /** Gives back what {@link #adopt} took, when the sequence could not be admitted after all. */
    void giveBack(Sequence seq) {
        blocks.free(seq.dropAdoptedPrefix());
    }

    /** Counts a sequence's first admission: its prompt, and how much of it came from the cache. */
    void admitted(Sequence seq, int cachedTokens) {
        if (seq.preemptions() == 0 && seq.generatedCount() == 0) {
            seq.recordCachedPromptTokens(cachedTokens);
            queriedTokens += seq.promptLength();
            hitTokens += Math.min(cachedTokens, seq.promptLength());
        }
        registerComputed(seq);
    }

    /** Registers the sequence's blocks whose every position now has K/V. */
    void registerComputed(Sequence seq) {
        if (seq.uncacheable()) {
            return;
        }
        int full = seq.numComputed() / blockSize;
        for (int i = seq.registeredBlocks(); i < full; i++) {
            long serial = blocks.register(seq.blockTable().get(i), seq.blockKey(i, hasher), seq.tokenBuffer(),
                    i * blockSize, seq.chainSerial());
            if (serial < 0) {
                seq.markUncacheable(); // a key collision: later blocks would chain to the wrong parent
                return;
            }
            seq.markRegistered(i + 1, serial);
        }
    }

    long queriedTokens() {
        return queriedTokens;
    }

    long hitTokens() {
        return hitTokens;
    }
}
