package io.distserve.processors.disagg;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.distserve.engine.kv.BlockManager;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class PrefillLeasesTest {

    private static final Duration TTL = Duration.ofSeconds(60);

    private final BlockManager blocks = new BlockManager(16);
    private final AtomicLong now = new AtomicLong(1_000_000_000L);

    private PrefillLeases manual() {
        return new PrefillLeases(blocks, TTL, now::get, false);
    }

    @Test
    void holdKeepsTheBlocksAndFreeGivesThemBackExactlyOnce() {
        PrefillLeases leases = manual();
        int[] ids = blocks.allocate(3).orElseThrow();
        PrefillLeases.Lease lease = leases.hold("cmpl-1", ids, 40, 7);

        assertThat(lease.blocks()).containsExactly(ids);
        assertThat(lease.promptTokens()).isEqualTo(40);
        assertThat(lease.firstToken()).isEqualTo(7);
        assertThat(leases.get("cmpl-1")).isSameAs(lease);
        assertThat(leases.active()).isEqualTo(1);
        assertThat(leases.blocksHeld()).isEqualTo(3);
        assertThat(blocks.freeCount()).isEqualTo(13);
        for (int b : ids) {
            assertThat(blocks.refCount(b)).isEqualTo(1);
        }

        assertThat(leases.free("cmpl-1")).isTrue();
        assertThat(blocks.freeCount()).isEqualTo(16);
        assertThat(leases.active()).isZero();
        assertThat(leases.blocksHeld()).isZero();
        assertThat(leases.freedCount()).isEqualTo(1);

        assertThat(leases.free("cmpl-1")).isFalse();
        assertThat(leases.free("never-held")).isFalse();
        assertThat(blocks.freeCount()).isEqualTo(16);
        assertThat(leases.freedCount()).isEqualTo(1);
    }

    @Test
    void anAcknowledgementNamingOtherBlocksDoesNotEndTheLease() {
        PrefillLeases leases = manual();
        int[] mine = blocks.allocate(2).orElseThrow();
        int[] other = blocks.allocate(2).orElseThrow();
        leases.hold("cmpl-a", mine, 20, 1);
        leases.hold("cmpl-b", other, 20, 1);

        assertThat(leases.free("cmpl-a", other)).isFalse();
        assertThat(leases.free("cmpl-a", new int[] {mine[1], mine[0]})).isFalse(); // order matters: it is a table
        assertThat(leases.active()).isEqualTo(2);
        assertThat(blocks.freeCount()).isEqualTo(12);

        assertThat(leases.free("cmpl-a", mine)).isTrue();
        assertThat(leases.free("cmpl-b", null)).isTrue();
        assertThat(blocks.freeCount()).isEqualTo(16);
    }

    @Test
    void theLeaseKeepsItsOwnCopyOfTheBlockIds() {
        PrefillLeases leases = manual();
        int[] ids = blocks.allocate(2).orElseThrow();
        int[] original = ids.clone();
        leases.hold("s", ids, 20, 1);
        ids[0] = 15; // the caller's array changing must not change what the lease frees
        assertThat(leases.get("s").blocks()).containsExactly(original);
        leases.free("s");
        assertThat(blocks.freeCount()).isEqualTo(16);
    }

    @Test
    void expiryFreesOnlyLeasesPastTheirTtlAndCountsThem() {
        PrefillLeases leases = manual();
        leases.hold("old", blocks.allocate(2).orElseThrow(), 20, 1);
        now.addAndGet(Duration.ofSeconds(30).toNanos());
        leases.hold("young", blocks.allocate(1).orElseThrow(), 5, 2);

        now.addAndGet(Duration.ofSeconds(29).toNanos()); // old: 59 s
        assertThat(leases.expire()).isZero();
        assertThat(blocks.freeCount()).isEqualTo(13);

        now.addAndGet(Duration.ofSeconds(1).toNanos()); // old: 60 s, young: 30 s
        assertThat(leases.expire()).isEqualTo(1);
        assertThat(leases.get("old")).isNull();
        assertThat(leases.get("young")).isNotNull();
        assertThat(blocks.freeCount()).isEqualTo(15);
        assertThat(leases.expiredCount()).isEqualTo(1);
        assertThat(leases.free("old")).as("an expired lease cannot be freed again").isFalse();
        assertThat(leases.freedCount()).isZero();

        now.addAndGet(Duration.ofSeconds(30).toNanos());
        assertThat(leases.expire()).isEqualTo(1);
        assertThat(leases.expiredCount()).isEqualTo(2);
        assertThat(blocks.freeCount()).isEqualTo(16);
        assertThat(leases.active()).isZero();
    }

    @Test
    void aFreedLeaseDoesNotExpireLater() {
        PrefillLeases leases = manual();
        leases.hold("s", blocks.allocate(4).orElseThrow(), 60, 3);
        assertThat(leases.free("s")).isTrue();
        now.addAndGet(TTL.toNanos() * 2);
        assertThat(leases.expire()).isZero();
        assertThat(leases.expiredCount()).isZero();
        assertThat(blocks.freeCount()).isEqualTo(16);
    }

    @Test
    void aDuplicateSessionIsRejectedAndItsBlocksAreNotLeaked() {
        PrefillLeases leases = manual();
        int[] first = blocks.allocate(2).orElseThrow();
        int[] second = blocks.allocate(3).orElseThrow();
        leases.hold("dup", first, 20, 1);

        assertThatThrownBy(() -> leases.hold("dup", second, 40, 2))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("dup");
        assertThat(blocks.freeCount()).as("the rejected lease's blocks went back").isEqualTo(14);
        assertThat(leases.get("dup").blocks()).containsExactly(first);
        assertThat(leases.blocksHeld()).isEqualTo(2);

        leases.free("dup");
        assertThat(blocks.freeCount()).isEqualTo(16);
    }

    @Test
    void closeFreesEveryLease() {
        PrefillLeases leases = manual();
        leases.hold("a", blocks.allocate(2).orElseThrow(), 20, 1);
        leases.hold("b", blocks.allocate(5).orElseThrow(), 70, 1);
        leases.hold("c", blocks.allocate(1).orElseThrow(), 3, 1);
        assertThat(blocks.freeCount()).isEqualTo(8);

        leases.close();
        assertThat(leases.active()).isZero();
        assertThat(blocks.freeCount()).isEqualTo(16);
    }

    @Test
    void theSweeperExpiresLeasesOnItsOwn() {
        PrefillLeases leases = new PrefillLeases(blocks, Duration.ofMillis(200));
        try {
            leases.hold("s", blocks.allocate(3).orElseThrow(), 30, 1);
            assertThat(blocks.freeCount()).isEqualTo(13);
            await().atMost(Duration.ofSeconds(5)).until(() -> leases.active() == 0);
            assertThat(blocks.freeCount()).isEqualTo(16);
            assertThat(leases.expiredCount()).isEqualTo(1);
        } finally {
            leases.close();
        }
    }
}
