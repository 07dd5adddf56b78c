package io.distserve.kv.transfer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ReadPlannerTest {

    private static final RegionLayout ONE_K = RegionLayout.single(1024);
    private final ReadPlanner planner = new ReadPlanner(1 << 20);

    private static ReadOp op(long remote, long local, long length) {
        return new ReadOp(remote, local, length);
    }

    @Test
    void emptyBatchIsAnEmptyPlan() {
        ReadPlan plan = planner.plan(List.of(), ONE_K, ONE_K);
        assertThat(plan.transfers()).isEmpty();
        assertThat(plan.totalBytes()).isZero();
    }

    @Test
    void coalescesRangesContiguousOnBothSidesWhateverTheInputOrder() {
        ReadPlan plan = planner.plan(List.of(op(200, 20, 10), op(100, 0, 10), op(110, 10, 10), op(120, 30, 5)),
                ONE_K, ONE_K);
        // 100..110..120 remote with 0..10..20 local: op(200,20) is contiguous locally but not remotely.
        assertThat(plan.transfers()).containsExactly(op(100, 0, 20), op(200, 20, 10), op(120, 30, 5));
        assertThat(plan.totalBytes()).isEqualTo(35);
        assertThat(plan.requested()).isEqualTo(4);
    }

    @Test
    void doesNotCoalesceRangesAdjacentRemotelyButNotLocally() {
        ReadPlan plan = planner.plan(List.of(op(0, 0, 8), op(8, 100, 8)), ONE_K, ONE_K);
        assertThat(plan.transfers()).containsExactly(op(0, 0, 8), op(8, 100, 8));
    }

    @Test
    void doesNotCoalesceRangesAdjacentLocallyButReversedRemotely() {
        ReadPlan plan = planner.plan(List.of(op(8, 0, 8), op(0, 8, 8)), ONE_K, ONE_K);
        assertThat(plan.transfers()).containsExactly(op(8, 0, 8), op(0, 8, 8));
    }

    @Test
    void overlappingRemoteSourcesAreFine() {
        ReadPlan plan = planner.plan(List.of(op(0, 0, 16), op(0, 16, 16)), ONE_K, ONE_K);
        assertThat(plan.transfers()).hasSize(2);
    }

    @Test
    void splitsAtRemoteAndLocalChunkEnds() {
        RegionLayout remote = new RegionLayout(List.of(100L, 100L, 100L));
        RegionLayout local = new RegionLayout(List.of(120L, 180L));
        // Three contiguous ops covering remote 50..250 into local 0..200: coalesced to one run, then cut at remote
        // 100 and 200 and at local 120.
        ReadPlan plan = planner.plan(List.of(op(50, 0, 50), op(100, 50, 100), op(200, 150, 50)), remote, local);
        assertThat(plan.transfers()).containsExactly(op(50, 0, 50), op(100, 50, 70), op(170, 120, 30),
                op(200, 150, 50));
    }

    @Test
    void rangesTouchingChunkEndsAreNotSplit() {
        RegionLayout chunks = new RegionLayout(List.of(64L, 64L));
        ReadPlan plan = planner.plan(List.of(op(0, 64, 64), op(64, 0, 64)), chunks, chunks);
        assertThat(plan.transfers()).containsExactly(op(64, 0, 64), op(0, 64, 64));
    }

    @Test
    void splitsAtMaxTransferSize() {
        ReadPlanner small = new ReadPlanner(100);
        ReadPlan plan = small.plan(List.of(op(0, 0, 250)), ONE_K, ONE_K);
        assertThat(plan.transfers()).containsExactly(op(0, 0, 100), op(100, 100, 100), op(200, 200, 50));
    }

    @Test
    void rejectsZeroLengthOps() {
        assertThatThrownBy(() -> planner.plan(List.of(op(0, 0, 8), op(8, 8, 0)), ONE_K, ONE_K))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("op 1 has length 0");
    }

    @Test
    void rejectsNegativeValues() {
        assertThatThrownBy(() -> planner.plan(List.of(op(-1, 0, 8)), ONE_K, ONE_K))
                .hasMessageContaining("op 0 has negative remote offset -1");
        assertThatThrownBy(() -> planner.plan(List.of(op(0, -8, 8)), ONE_K, ONE_K))
                .hasMessageContaining("negative local offset");
        assertThatThrownBy(() -> planner.plan(List.of(op(0, 0, -8)), ONE_K, ONE_K))
                .hasMessageContaining("length -8");
    }

    @Test
    void rejectsOverflowAndOutOfRange() {
        assertThatThrownBy(() -> planner.plan(List.of(op(Long.MAX_VALUE - 2, 0, 8)), ONE_K, ONE_K))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("outside the remote region");
        assertThatThrownBy(() -> planner.plan(List.of(op(0, 1020, 8)), ONE_K, ONE_K))
                .hasMessageContaining("outside the local region [0, 1024)");
        assertThatThrownBy(() -> planner.plan(List.of(op(0, 0, Long.MAX_VALUE)), ONE_K, ONE_K))
                .hasMessageContaining("outside the remote region");
        assertThatThrownBy(() -> planner.plan(List.of(op(1024, 0, 1)), ONE_K, ONE_K))
                .hasMessageContaining("outside the remote region");
        assertThat(planner.plan(List.of(op(1023, 1023, 1)), ONE_K, ONE_K).transfers()).hasSize(1);
    }

    @Test
    void rejectsOverlappingLocalDestinations() {
        assertThatThrownBy(() -> planner.plan(List.of(op(0, 0, 16), op(100, 200, 8), op(300, 8, 16)), ONE_K, ONE_K))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("ops 0 and 2 overlap in the local region: [0, 16) and [8, 24)");
        assertThatThrownBy(() -> planner.plan(List.of(op(0, 0, 16), op(0, 0, 16)), ONE_K, ONE_K))
                .hasMessageContaining("overlap");
    }

    @Test
    void rejectsNullOps() {
        List<ReadOp> ops = new ArrayList<>();
        ops.add(null);
        assertThatThrownBy(() -> planner.plan(ops, ONE_K, ONE_K)).hasMessageContaining("op 0 is null");
        assertThatThrownBy(() -> planner.plan(null, ONE_K, ONE_K)).isInstanceOf(IllegalArgumentException.class);
    }

    /** Random batches: the plan must move exactly the same bytes to the same places, within every limit. */
    @Test
    void randomPlansPreserveTheByteMapping() {
        Random rnd = new Random(42);
        for (int round = 0; round < 300; round++) {
            RegionLayout remote = randomLayout(rnd);
            RegionLayout local = randomLayout(rnd);
            ReadPlanner p = new ReadPlanner(1 + rnd.nextInt(200));
            List<ReadOp> ops = randomOps(rnd, remote, local);
            ReadPlan plan = p.plan(ops, remote, local);
            long[] want = new long[(int) local.size()];
            long[] got = new long[(int) local.size()];
            Arrays.fill(want, -1);
            Arrays.fill(got, -1);
            for (ReadOp o : ops) {
                for (int i = 0; i < o.length(); i++) {
                    want[(int) (o.localOffset() + i)] = o.remoteOffset() + i;
                }
            }
            for (ReadOp t : plan.transfers()) {
                assertThat(t.length()).isPositive().isLessThanOrEqualTo(p.maxTransferBytes());
                assertThat(t.remoteEnd()).isLessThanOrEqualTo(remote.segmentEnd(t.remoteOffset()));
                assertThat(t.localEnd()).isLessThanOrEqualTo(local.segmentEnd(t.localOffset()));
                for (int i = 0; i < t.length(); i++) {
                    assertThat(got[(int) (t.localOffset() + i)]).isEqualTo(-1); // each byte written once
                    got[(int) (t.localOffset() + i)] = t.remoteOffset() + i;
                }
            }
            assertThat(got).isEqualTo(want);
            assertThat(plan.totalBytes()).isEqualTo(ops.stream().mapToLong(ReadOp::length).sum());
        }
    }

    static RegionLayout randomLayout(Random rnd) {
        int n = 1 + rnd.nextInt(4);
        List<Long> sizes = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            sizes.add(64L + rnd.nextInt(400));
        }
        return new RegionLayout(sizes);
    }

    /** Non-overlapping local ranges, sometimes runs contiguous on both sides, shuffled. */
    static List<ReadOp> randomOps(Random rnd, RegionLayout remote, RegionLayout local) {
        List<ReadOp> ops = new ArrayList<>();
        long l = rnd.nextInt(16);
        while (true) {
            long len = 1 + rnd.nextInt(96);
            if (l + len > local.size()) {
                break;
            }
            long r;
            if (!ops.isEmpty() && rnd.nextBoolean()) {
                r = ops.get(ops.size() - 1).remoteEnd(); // contiguous remote too (if local is)
            } else {
                r = rnd.nextInt((int) remote.size());
            }
            if (r + len > remote.size()) {
                r = remote.size() - len;
                if (r < 0) {
                    break;
                }
            }
            ops.add(new ReadOp(r, l, len));
            l += len + (rnd.nextInt(3) == 0 ? rnd.nextInt(30) : 0);
        }
        Collections.shuffle(ops, rnd);
        return ops;
    }
}
