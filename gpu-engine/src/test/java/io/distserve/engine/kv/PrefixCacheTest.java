package io.distserve.engine.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PrefixCacheTest {

    private static final int BS = 4;
    private static final PrefixHasher HASHER = new PrefixHasher(PrefixHasher.salt("test"), BS);

    /** Registers the full blocks of {@code tokens} held in {@code table} in order, as a sequence does. */
    private static void registerAll(BlockManager m, int[] table, int[] tokens) {
        long[] keys = HASHER.keys(tokens);
        long serial = 0;
        for (int i = 0; i < keys.length && i < table.length; i++) {
            serial = m.register(table[i], keys[i], tokens, i * BS, serial);
            assertThat(serial).isPositive();
        }
    }

    private static int[] tokens(int n, int salt) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = (i * 7 + salt * 131) % 1000;
        }
        return t;
    }

    @Test
    void keysChainSoThatEqualPrefixesShareKeysAndADifferenceChangesEveryLaterKey() {
        int[] a = tokens(16, 1);
        int[] b = a.clone();
        b[9] = 999_999;
        long[] ka = HASHER.keys(a);
        long[] kb = HASHER.keys(b);
        assertThat(ka).hasSize(4);
        assertThat(ka[0]).isEqualTo(kb[0]);
        assertThat(ka[1]).isEqualTo(kb[1]);
        assertThat(ka[2]).isNotEqualTo(kb[2]);
        assertThat(ka[3]).isNotEqualTo(kb[3]);
        assertThat(new PrefixHasher(PrefixHasher.salt("other model"), BS).keys(a)[0]).isNotEqualTo(ka[0]);
        assertThat(HASHER.keys(Arrays.copyOf(a, 11))).containsExactly(ka[0], ka[1]);
    }

    @Test
    void aReleasedSequenceStaysCachedAndIsFoundAgain() {
        BlockManager m = new BlockManager(8, HASHER);
        int[] t = tokens(10, 1); // two full blocks and a partial one
        int[] table = m.allocate(3).orElseThrow();
        registerAll(m, table, t);
        m.free(table);
        assertThat(m.usedCount()).isZero();
        assertThat(m.freeCount()).isEqualTo(8);
        assertThat(m.cachedCount()).isEqualTo(2);
        assertThat(m.evictableCount()).isEqualTo(2);

        BlockManager.PrefixHit hit = m.acquirePrefix(HASHER.keys(t), t, 10);
        assertThat(hit.blocks()).containsExactly(table[0], table[1]);
        assertThat(m.refCount(table[0])).isEqualTo(1);
        assertThat(m.evictableCount()).isZero();
        m.free(hit.blocks());
    }

    @Test
    void aHitStopsAtTheFirstBlockThatDiffers() {
        BlockManager m = new BlockManager(8, HASHER);
        int[] t = tokens(12, 1);
        int[] table = m.allocate(3).orElseThrow();
        registerAll(m, table, t);
        int[] other = t.clone();
        other[5] = 4242;
        BlockManager.PrefixHit hit = m.acquirePrefix(HASHER.keys(other), other, 3);
        assertThat(hit.blocks()).containsExactly(table[0]);
        m.free(hit.blocks());
        m.free(table);
    }

    @Test
    void aForgedKeyWithOtherTokensIsAMissNotAWrongHit() {
        BlockManager m = new BlockManager(4, HASHER);
        int[] t = tokens(8, 1);
        int[] table = m.allocate(2).orElseThrow();
        registerAll(m, table, t);
        int[] liar = tokens(8, 2);
        // the keys of t, the tokens of liar: as if every key collided
        assertThat(m.acquirePrefix(HASHER.keys(t), liar, 2).blocks()).isEmpty();
        m.free(table);
    }

    @Test
    void aChildWhoseParentWasEvictedAndRecomputedIsNotTrusted() {
        BlockManager m = new BlockManager(3, HASHER);
        int[] t = tokens(8, 1);
        long[] keys = HASHER.keys(t);
        int[] table = m.allocate(2).orElseThrow();
        registerAll(m, table, t);
        m.free(table[0]); // the head is released, the child still referenced
        int[] all = m.allocate(2).orElseThrow(); // the free block and the evicted head
        assertThat(all).contains(table[0]);
        assertThat(m.evictions()).isEqualTo(1);
        // the head's tokens computed again into another block, registered afresh
        int recomputed = all[0] == table[0] ? all[1] : all[0];
        m.free(all[0] == table[0] ? all[0] : all[1]);
        assertThat(m.register(recomputed, keys[0], t, 0, 0)).isPositive();
        m.free(table[1]);
        // the old child was computed after another parent registration: not part of the new chain
        BlockManager.PrefixHit hit = m.acquirePrefix(keys, t, 2);
        assertThat(hit.blocks()).containsExactly(recomputed);
        m.free(hit.blocks());
        m.free(recomputed);
    }

    @Test
    void evictionTakesTheLeastRecentlyReleasedAndTheTailBeforeTheHead() {
        BlockManager m = new BlockManager(4, HASHER);
        int[] t = tokens(16, 1);
        int[] table = m.allocate(4).orElseThrow();
        registerAll(m, table, t);
        m.free(table);
        int[] one = m.allocate(1).orElseThrow();
        assertThat(one).containsExactly(table[3]);
        BlockManager.PrefixHit hit = m.acquirePrefix(HASHER.keys(t), t, 4);
        assertThat(hit.blocks()).containsExactly(table[0], table[1], table[2]);
        m.free(hit.blocks());
        m.free(one);
    }

    @Test
    void aDuplicateBlockChainsToTheCachedOneAndStaysUncached() {
        BlockManager m = new BlockManager(8, HASHER);
        int[] t = tokens(8, 1);
        int[] first = m.allocate(2).orElseThrow();
        int[] second = m.allocate(2).orElseThrow();
        long[] keys = HASHER.keys(t);
        long s0 = m.register(first[0], keys[0], t, 0, 0);
        long d0 = m.register(second[0], keys[0], t, 0, 0);
        assertThat(d0).isEqualTo(s0);
        assertThat(m.cachedCount()).isEqualTo(1);
        // a different block under a known key (a collision) ends that sequence's caching
        int[] t2 = tokens(8, 2);
        assertThat(m.register(second[1], keys[0], t2, 0, 0)).isEqualTo(-1);
        m.free(first);
        m.free(second);
        assertThat(m.evictableCount()).isEqualTo(1);
        assertThat(m.freeCount()).isEqualTo(8);
    }

    @Test
    void registeringAFreeBlockIsAnError() {
        BlockManager m = new BlockManager(2, HASHER);
        assertThatThrownBy(() -> m.register(0, 1L, tokens(4, 1), 0, 0)).hasMessageContaining("free KV block 0");
    }

    @Test
    void withoutAHasherNothingIsCached() {
        BlockManager m = new BlockManager(4);
        int[] t = tokens(8, 1);
        int[] table = m.allocate(2).orElseThrow();
        assertThat(m.register(table[0], 1L, t, 0, 0)).isEqualTo(-1);
        m.free(table);
        assertThat(m.acquirePrefix(HASHER.keys(t), t, 2).blocks()).isEmpty();
        assertThat(m.cachedCount()).isZero();
    }

    @Test
    void theChangeLogReplaysToTheCachedKeysAndResetsAReaderThatFellBehind() {
        BlockManager m = new BlockManager(4, HASHER);
        PrefixCacheDelta start = m.cacheChangesSince(0);
        assertThat(start.reset()).isFalse();
        int[] t = tokens(8, 1);
        int[] table = m.allocate(2).orElseThrow();
        registerAll(m, table, t);
        PrefixCacheDelta d = m.cacheChangesSince(start.next());
        assertThat(d.reset()).isFalse();
        assertThat(d.stored()).containsExactlyInAnyOrder(HASHER.keys(t));
        m.free(table);
        m.allocate(4).ifPresent(m::free); // evicts both
        PrefixCacheDelta gone = m.cacheChangesSince(d.next());
        assertThat(gone.stored()).isEmpty();
        assertThat(gone.removed()).containsExactlyInAnyOrder(HASHER.keys(t));
        // a cursor from the future (another run of the engine) gets a snapshot
        assertThat(m.cacheChangesSince(gone.next() + 100).reset()).isTrue();
    }

    /**
     * Random interleavings of what the engine, leases and migrations do to the pool: allocate, take a cached
     * prefix, register, share (incRef), free, preempt (free a whole table), evict (allocate under pressure).
     * After every operation: each block's count is exactly the references the model holds, free + used = total,
     * a referenced block is never handed out again, a cached block's tokens are what was registered, and a
     * reader replaying the change log holds exactly the cached keys.
     */
    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 4, 5, 6, 7, 8})
    void invariantsHoldUnderRandomInterleavings(long seed) {
        Random rnd = new Random(seed);
        int total = 24;
        BlockManager m = new BlockManager(total, HASHER);
        // a few prompts that share prefixes with each other
        List<int[]> prompts = new ArrayList<>();
        int[] base = tokens(40, (int) seed);
        for (int p = 0; p < 6; p++) {
            int[] t = base.clone();
            int cut = rnd.nextInt(40);
            for (int i = cut; i < t.length; i++) {
                t[i] = rnd.nextInt(50);
            }
            prompts.add(Arrays.copyOf(t, 4 + rnd.nextInt(37)));
        }
        record Owner(int[] blocks, int[] tokens, int registered) {
        }
        List<Owner> owners = new ArrayList<>();
        Map<Integer, int[]> content = new HashMap<>(); // block -> the 4 tokens whose K/V it holds
        Set<Long> replayed = new HashSet<>();
        long cursor = m.cacheChangesSince(0).next();
        int hitBlocks = 0;
        for (int step = 0; step < 3000; step++) {
            int op = rnd.nextInt(8);
            if (op <= 1) { // admit a sequence: cached prefix + fresh blocks
                int[] t = prompts.get(rnd.nextInt(prompts.size()));
                int nBlocks = (t.length + BS - 1) / BS;
                BlockManager.PrefixHit hit = m.acquirePrefix(HASHER.keys(t), t, (t.length - 1) / BS);
                hitBlocks += hit.blocks().length;
                for (int i = 0; i < hit.blocks().length; i++) {
                    assertThat(content.get(hit.blocks()[i])).as("tokens of cached block")
                            .containsExactly(Arrays.copyOfRange(t, i * BS, (i + 1) * BS));
                }
                var fresh = m.allocate(nBlocks - hit.blocks().length);
                if (fresh.isEmpty()) {
                    m.free(hit.blocks());
                    continue;
                }
                for (int b : fresh.get()) {
                    for (Owner o : owners) {
                        assertThat(o.blocks()).as("a referenced block handed out again").doesNotContain(b);
                    }
                    content.remove(b);
                }
                int[] table = new int[nBlocks];
                System.arraycopy(hit.blocks(), 0, table, 0, hit.blocks().length);
                System.arraycopy(fresh.get(), 0, table, hit.blocks().length, fresh.get().length);
                owners.add(new Owner(table, t, hit.blocks().length));
            } else if (op == 2 && !owners.isEmpty()) { // compute: register the full blocks
                int i = rnd.nextInt(owners.size());
                Owner o = owners.get(i);
                long[] keys = HASHER.keys(o.tokens());
                long serial = 0;
                for (int b = 0; b < keys.length; b++) {
                    if (b >= o.registered()) {
                        content.putIfAbsent(o.blocks()[b], Arrays.copyOfRange(o.tokens(), b * BS, (b + 1) * BS));
                    }
                    serial = m.register(o.blocks()[b], keys[b], o.tokens(), b * BS, serial);
                    if (serial < 0) {
                        break;
                    }
                }
                owners.set(i, new Owner(o.blocks(), o.tokens(), keys.length));
            } else if (op == 3 && !owners.isEmpty()) { // share: a lease takes another reference
                Owner o = owners.get(rnd.nextInt(owners.size()));
                m.incRef(o.blocks());
                owners.add(new Owner(o.blocks().clone(), o.tokens(), o.registered()));
            } else if (op >= 4 && op <= 6 && !owners.isEmpty()) { // finish, abort or preempt: the table goes back
                m.free(owners.remove(rnd.nextInt(owners.size())).blocks());
            } else if (op == 7) { // pressure: take and return free blocks (evicts)
                m.allocate(1 + rnd.nextInt(Math.max(1, m.freeCount()))).ifPresent(ids -> {
                    for (int b : ids) {
                        content.remove(b);
                    }
                    m.free(ids);
                });
            }
            // invariants
            int[] expected = new int[total];
            for (Owner o : owners) {
                for (int b : o.blocks()) {
                    expected[b]++;
                }
            }
            int used = 0;
            for (int b = 0; b < total; b++) {
                assertThat(m.refCount(b)).as("refcount of block %d at step %d", b, step).isEqualTo(expected[b]);
                used += expected[b] > 0 ? 1 : 0;
            }
            assertThat(m.usedCount()).isEqualTo(used);
            assertThat(m.freeCount()).isEqualTo(total - used);
            assertThat(m.evictableCount()).isLessThanOrEqualTo(m.cachedCount());
            PrefixCacheDelta d = m.cacheChangesSince(cursor);
            if (d.reset()) {
                replayed.clear();
            }
            for (long k : d.stored()) {
                replayed.add(k);
            }
            for (long k : d.removed()) {
                replayed.remove(k);
            }
            cursor = d.next();
            assertThat(replayed).hasSize(m.cachedCount());
            assertThat(replayed).containsExactlyInAnyOrderElementsOf(m.cacheChangesSince(-1).reset()
                    ? boxed(m.cacheChangesSince(-1).stored()) : List.of());
        }
        assertThat(hitBlocks).as("the interleaving exercised hits").isPositive();
        assertThat(m.evictions()).as("the interleaving exercised evictions").isPositive();
        for (Owner o : owners) {
            m.free(o.blocks());
        }
        assertThat(m.usedCount()).isZero();
        assertThat(m.freeCount()).isEqualTo(total);
    }

    private static List<Long> boxed(long[] a) {
        List<Long> out = new ArrayList<>();
        for (long v : a) {
            out.add(v);
        }
        return out;
    }
}
