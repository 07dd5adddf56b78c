package io.distserve.engine.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class BlockManagerTest {

    @Test
    void allocatesAllOrNothing() {
        BlockManager m = new BlockManager(4);
        int[] three = m.allocate(3).orElseThrow();
        assertThat(three).doesNotHaveDuplicates();
        assertThat(java.util.Arrays.stream(three).boxed()).allMatch(b -> b >= 0 && b < 4);
        assertThat(m.allocate(2)).isEmpty();
        assertThat(m.freeCount()).isEqualTo(1); // the failed allocation took nothing
        assertThat(m.usedCount()).isEqualTo(3);
        assertThat(m.allocate(1)).isPresent();
        assertThat(m.allocate(1)).isEmpty();
        assertThat(m.allocate(0)).hasValueSatisfying(ids -> assertThat(ids).isEmpty());
        m.free(three);
        assertThat(m.freeCount()).isEqualTo(3);
        assertThat(m.totalBlocks()).isEqualTo(4);
    }

    @Test
    void doubleFreeAndUnknownIdsAreProgrammingErrorsNamingTheBlock() {
        BlockManager m = new BlockManager(3);
        int[] ids = m.allocate(2).orElseThrow();
        m.free(ids[0]);
        assertThatThrownBy(() -> m.free(ids[0])).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("double free").hasMessageContaining("block " + ids[0]);
        assertThatThrownBy(() -> m.free(7)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("unknown KV block 7");
        assertThatThrownBy(() -> m.free(-1)).isInstanceOf(IllegalStateException.class);
        // The same id twice in one call is a double free too, and nothing is freed.
        assertThatThrownBy(() -> m.free(ids[1], ids[1])).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("block " + ids[1]);
        assertThat(m.refCount(ids[1])).isEqualTo(1);
        assertThatThrownBy(() -> m.incRef(ids[0])).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("free KV block " + ids[0]);
    }

    @Test
    void aBadIdLeavesTheWholeCallUnapplied() {
        BlockManager m = new BlockManager(4);
        int[] ids = m.allocate(2).orElseThrow();
        assertThatThrownBy(() -> m.free(ids[0], ids[1], 99)).isInstanceOf(IllegalStateException.class);
        assertThat(m.usedCount()).isEqualTo(2);
        assertThatThrownBy(() -> m.incRef(ids[0], 99)).isInstanceOf(IllegalStateException.class);
        assertThat(m.refCount(ids[0])).isEqualTo(1);
    }

    @Test
    void sharedBlocksAreFreedByTheLastOwner() {
        BlockManager m = new BlockManager(2);
        int[] ids = m.allocate(2).orElseThrow();
        m.incRef(ids); // a lease holder shares them
        assertThat(m.refCount(ids[0])).isEqualTo(2);
        m.decRef(ids);
        assertThat(m.freeCount()).isZero();
        m.free(ids);
        assertThat(m.freeCount()).isEqualTo(2);
        assertThat(m.refCount(ids[1])).isZero();
    }

    @Test
    void concurrentAllocateAndFreeNeverHandsOutABlockTwice() throws Exception {
        BlockManager m = new BlockManager(64);
        AtomicIntegerArray owner = new AtomicIntegerArray(64); // 0 = nobody, else thread index + 1
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int me = t + 1;
            threads.add(new Thread(() -> {
                SplittableRandom rnd = new SplittableRandom(me);
                try {
                    for (int i = 0; i < 20_000; i++) {
                        Optional<int[]> got = m.allocate(1 + rnd.nextInt(8));
                        if (got.isEmpty()) {
                            continue;
                        }
                        for (int b : got.get()) {
                            if (!owner.compareAndSet(b, 0, me)) {
                                throw new AssertionError("block " + b + " handed out twice");
                            }
                        }
                        for (int b : got.get()) {
                            owner.set(b, 0);
                        }
                        m.free(got.get());
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            }));
        }
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            t.join();
        }
        assertThat(errors).isEmpty();
        assertThat(m.freeCount()).isEqualTo(64);
    }
}
