package io.distserve.kv.rdma;

import static io.distserve.kv.rdma.RdmaTestPools.assertSameBytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A connection of several queue pairs over the fake fabric: one migration's READs striped over all of them. */
class RdmaStripingTest {

    private static final int BLOCK = 4096;
    private static final Duration T = Duration.ofSeconds(10);

    private final FakeFabric fabric = new FakeFabric();
    private final ByteBufferRegion source = ByteBufferRegion.allocateDirect(2, 32 * BLOCK);
    private final ByteBufferRegion target = ByteBufferRegion.allocateDirect(2, 32 * BLOCK);
    private RdmaTransport prefill;
    private RdmaTransport decode;

    private Connection connect(int queuePairs) throws Exception {
        Random rnd = new Random(4);
        for (int c = 0; c < 2; c++) {
            ByteBuffer b = source.slice((long) c * 32 * BLOCK, 32 * BLOCK);
            for (int i = 0; i < b.capacity(); i++) {
                b.put(i, (byte) rnd.nextInt());
            }
        }
        // READs of at most 3 blocks, a signalled one every 2 (send queues of 4), shares of at least a block
        Map<String, String> extra = Map.of(RdmaOptions.MAX_MESSAGE, Integer.toString(3 * BLOCK),
                RdmaOptions.SIGNAL_EVERY, "2", RdmaOptions.MIN_STRIPE, Integer.toString(BLOCK));
        prefill = new RdmaTransport(fabric.verbs(0x7f00_0000_0000L), RdmaTestPools.options(queuePairs, extra));
        prefill.register(source);
        prefill.start();
        decode = new RdmaTransport(fabric.verbs(0x7e00_0000_0000L), RdmaTestPools.options(queuePairs, extra));
        decode.register(target);
        decode.start();
        return decode.connect(prefill.localEndpoint(), T);
    }

    @AfterEach
    void nothingIsLeft() {
        if (decode != null) {
            decode.close();
        }
        if (prefill != null) {
            prefill.close();
        }
        assertThat(RdmaTestPools.liveThreads()).as("kv-rdma threads left after close").isEmpty();
        assertThat(fabric.liveQueuePairs()).isZero();
        assertThat(fabric.liveRegistrations()).isZero();
    }

    /** {@code n} adjacent blocks from {@code from} to {@code to}: one run before striping. */
    private static List<ReadOp> adjacent(int from, int to, int n) {
        List<ReadOp> ops = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ops.add(new ReadOp((long) (from + i) * BLOCK, (long) (to + i) * BLOCK, BLOCK));
        }
        return ops;
    }

    @Test
    void oneMigrationIsStripedEvenlyOverEveryQueuePair() throws Exception {
        try (Connection c = connect(3)) {
            List<ReadOp> ops = adjacent(2, 5, 24); // 96 KiB in one run: 32 KiB per queue pair, 3-block READs
            assertThat(c.read(ops).await(T).bytes()).isEqualTo(24L * BLOCK);
            assertSameBytes(source, target, ops);
            assertThat(fabric.qps).hasSize(3);
            assertThat(fabric.qps).allSatisfy(q -> assertThat(q.postedRequests.get()).isEqualTo(3));
            assertThat(fabric.maxOutstanding.get()).isLessThanOrEqualTo(4);
        }
    }

    @Test
    void aBatchCompletesOnlyWhenEveryQueuePairHasCompletedItsShareInWhateverOrder() throws Exception {
        try (Connection c = connect(2)) {
            FakeFabric.FakeQp first = fabric.qps.get(0);
            FakeFabric.FakeQp second = fabric.qps.get(1);
            first.mode = FakeFabric.Mode.HOLD;
            CountDownLatch secondHandled = new CountDownLatch(2);
            second.polled = secondHandled;
            List<ReadOp> ops = adjacent(0, 40, 8); // 16 KiB per queue pair: 2 READs each, within their send queues
            TransferFuture f = c.read(ops);
            // the second queue pair's completion thread came back to poll twice: it has handled its completions
            assertThat(secondHandled.await(10, TimeUnit.SECONDS)).isTrue();
            assertThat(f.isDone()).as("done before the first queue pair completed").isFalse();
            first.release();
            f.await(T);
            assertSameBytes(source, target, ops);
        }
    }

    @Test
    void concurrentBatchesWithShuffledCompletionsEachCompleteOnce() throws Exception {
        fabric.mode = FakeFabric.Mode.SHUFFLE;
        try (Connection c = connect(3)) {
            List<List<ReadOp>> all = new ArrayList<>();
            List<TransferFuture> futures = new ArrayList<>();
            for (int b = 0; b < 6; b++) {
                List<ReadOp> ops = adjacent(b * 10, b * 10, 3 + b);
                all.add(ops);
                futures.add(c.read(ops));
            }
            for (int b = 0; b < 6; b++) {
                assertThat(futures.get(b).await(T).bytes()).isEqualTo((3L + b) * BLOCK);
                assertSameBytes(source, target, all.get(b));
            }
        }
    }

    @Test
    void oneQueuePairFailingFailsTheBatchClosesThemAllAndTheNextReadReconnectsThemAll() throws Exception {
        try (Connection c = connect(3)) {
            fabric.qps.get(1).mode = FakeFabric.Mode.FAIL_NEXT;
            TransferFuture f = c.read(adjacent(0, 0, 12));
            assertThatThrownBy(() -> f.await(T)).isInstanceOf(TransferException.class)
                    .hasMessageContaining("on queue pair 1 failed: IBV_WC_REM_ACCESS_ERR")
                    .hasMessageContaining(prefill.localEndpoint().address())
                    .hasMessageContaining("1 batch(es), " + 12 * BLOCK + " bytes outstanding");
            assertThat(fabric.liveQueuePairs()).isZero();
            List<ReadOp> ops = adjacent(20, 30, 9);
            c.read(ops).await(T);
            assertSameBytes(source, target, ops);
            assertThat(fabric.connects.get()).isEqualTo(6);
        }
    }

    @Test
    void aBatchHangingOnOneQueuePairTimesOutAndClosesThemAll() throws Exception {
        try (Connection c = connect(2)) {
            fabric.qps.get(0).mode = FakeFabric.Mode.HANG;
            TransferFuture hung = c.read(adjacent(0, 0, 8));
            assertThatThrownBy(() -> hung.await(Duration.ofMillis(200))).isInstanceOf(TransferTimeoutException.class);
            assertThat(fabric.liveQueuePairs()).isZero();
            List<ReadOp> ops = adjacent(8, 8, 8);
            c.read(ops).await(T);
            assertSameBytes(source, target, ops);
        }
    }
}
