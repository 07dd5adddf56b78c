package io.distserve.kv.rdma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferTimeoutException;
import io.distserve.kv.transfer.TransportOptions;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The rdma transport over a fake fabric: the planning, the bookkeeping and the failure paths, without a NIC. */
class RdmaTransportTest {

    private static final int BLOCK = 4096;
    private static final int BLOCKS_PER_CHUNK = 16;

    private final FakeFabric fabric = new FakeFabric();
    private ByteBufferRegion prefillPool;
    private ByteBufferRegion decodePool;
    private RdmaTransport prefill;
    private RdmaTransport decode;

    private static TransportOptions options(int signalEvery) {
        Map<String, String> extra = new HashMap<>();
        extra.put("rdma.signalEvery", Integer.toString(signalEvery));
        extra.put("rdma.maxMessageBytes", Integer.toString(3 * BLOCK)); // small: runs get split
        return new TransportOptions("10.0.0.1", 0, null, 1, 8L << 20, 0, Duration.ofSeconds(2), extra);
    }

    @BeforeEach
    void start() throws Exception {
        prefillPool = ByteBufferRegion.allocateDirect(3, BLOCK * BLOCKS_PER_CHUNK);
        decodePool = ByteBufferRegion.allocateDirect(3, BLOCK * BLOCKS_PER_CHUNK);
        Random rnd = new Random(1);
        for (int c = 0; c < 3; c++) {
            ByteBuffer b = prefillPool.slice((long) c * BLOCK * BLOCKS_PER_CHUNK, BLOCK * BLOCKS_PER_CHUNK);
            for (int i = 0; i < b.capacity(); i++) {
                b.put(i, (byte) rnd.nextInt());
            }
        }
        prefill = new RdmaTransport(fabric.verbs(0x7f00_0000_0000L), options(4));
        prefill.register(prefillPool);
        prefill.start();
        decode = new RdmaTransport(fabric.verbs(0x7e00_0000_0000L), options(4));
        decode.register(decodePool);
        decode.start();
    }

    @AfterEach
    void stop() {
        decode.close();
        prefill.close();
    }

    private static List<ReadOp> blocks(int[] remote, int[] local) {
        List<ReadOp> ops = new ArrayList<>();
        for (int i = 0; i < remote.length; i++) {
            ops.add(new ReadOp((long) remote[i] * BLOCK, (long) local[i] * BLOCK, BLOCK));
        }
        return ops;
    }

    private void assertCopied(int[] remote, int[] local) {
        for (int i = 0; i < remote.length; i++) {
            ByteBuffer src = prefillPool.slice((long) remote[i] * BLOCK, BLOCK);
            ByteBuffer dst = decodePool.slice((long) local[i] * BLOCK, BLOCK);
            assertThat(dst).as("block %d -> %d", remote[i], local[i]).isEqualTo(src);
        }
    }

    @Test
    void theEndpointCarriesEverySegmentsAddressAndKey() {
        EndpointInfo e = prefill.localEndpoint();
        assertThat(e.transport()).isEqualTo("rdma");
        RdmaEndpoint parsed = RdmaEndpoint.parse(e);
        assertThat(parsed.segments()).hasSize(3);
        assertThat(parsed.linkType()).isEqualTo("RoCE");
        assertThat(e.attributes().get(RdmaEndpoint.REMOTE_ADDRS)).startsWith("0x7f0000000000,");
    }

    @Test
    void blocksAcrossSegmentsArriveWhole() throws Exception {
        try (Connection c = decode.connect(prefill.localEndpoint(), Duration.ofSeconds(2))) {
            int[] remote = {0, 1, 2, 15, 16, 17, 40, 41, 5};
            int[] local = {10, 11, 12, 13, 14, 15, 16, 17, 47};
            TransferFuture f = c.read(blocks(remote, local));
            assertThat(f.await(Duration.ofSeconds(5)).bytes()).isEqualTo(9L * BLOCK);
            assertCopied(remote, local);
        }
    }

    @Test
    void completionsOutOfOrderStillCompleteEachBatchOnce() throws Exception {
        fabric.mode = FakeFabric.Mode.SHUFFLE;
        try (Connection c = decode.connect(prefill.localEndpoint(), Duration.ofSeconds(2))) {
            List<TransferFuture> batches = new ArrayList<>();
            for (int b = 0; b < 6; b++) {
                batches.add(c.read(blocks(new int[] {b, b + 8, b + 20, b + 33}, new int[] {b * 4, b * 4 + 1,
                        b * 4 + 2, b * 4 + 3})));
            }
            for (TransferFuture f : batches) {
                f.await(Duration.ofSeconds(5));
            }
            for (int b = 0; b < 6; b++) {
                assertCopied(new int[] {b, b + 8, b + 20, b + 33}, new int[] {b * 4, b * 4 + 1, b * 4 + 2,
                        b * 4 + 3});
            }
        }
    }

    @Test
    void aBatchLongerThanTheSendQueueGoesOutInWindowsAndNeverOverflowsIt() throws Exception {
        // signalEvery 4: send queue 8; 40 scattered blocks = 40 READs
        int[] remote = new int[40];
        int[] local = new int[40];
        for (int i = 0; i < 40; i++) {
            remote[i] = (i * 7) % 48;
            local[i] = 47 - i;
        }
        try (Connection c = decode.connect(prefill.localEndpoint(), Duration.ofSeconds(2))) {
            c.read(blocks(remote, local)).await(Duration.ofSeconds(5));
        }
        assertCopied(remote, local);
        assertThat(fabric.maxOutstanding.get()).isLessThanOrEqualTo(8);
        assertThat(fabric.postedChains).allMatch(n -> n <= 4);
    }

    @Test
    void aFailedReadFailsItsBatchNamingThePeerAndTheNextReadReconnects() throws Exception {
        try (Connection c = decode.connect(prefill.localEndpoint(), Duration.ofSeconds(2))) {
            fabric.mode = FakeFabric.Mode.FAIL_NEXT;
            TransferFuture f = c.read(blocks(new int[] {1, 2}, new int[] {3, 9}));
            assertThatThrownBy(() -> f.await(Duration.ofSeconds(5))).isInstanceOf(TransferException.class)
                    .hasMessageContaining(prefill.localEndpoint().address())
                    .hasMessageContaining("IBV_WC_REM_ACCESS_ERR")
                    .hasMessageContaining("bytes outstanding");
            int before = fabric.connects.get();
            c.read(blocks(new int[] {4}, new int[] {5})).await(Duration.ofSeconds(5));
            assertCopied(new int[] {4}, new int[] {5});
            assertThat(fabric.connects.get()).isEqualTo(before + 1);
        }
    }

    @Test
    void aBatchThatHangsTimesOutClosesItsQueuePairAndFailsWhatWasInFlight() throws Exception {
        try (Connection c = decode.connect(prefill.localEndpoint(), Duration.ofSeconds(2))) {
            fabric.mode = FakeFabric.Mode.HANG;
            TransferFuture hung = c.read(blocks(new int[] {7}, new int[] {7}));
            TransferFuture other = c.read(blocks(new int[] {8}, new int[] {8}));
            assertThatThrownBy(() -> hung.await(Duration.ofMillis(200))).isInstanceOf(TransferTimeoutException.class);
            assertThatThrownBy(() -> other.await(Duration.ofSeconds(2))).isInstanceOf(TransferException.class)
                    .hasMessageContaining("timed out");
            fabric.mode = FakeFabric.Mode.NORMAL;
            c.read(blocks(new int[] {9}, new int[] {9})).await(Duration.ofSeconds(5));
            assertCopied(new int[] {9}, new int[] {9});
        }
    }

    @Test
    void badReadsAreRefusedBeforeAnythingMoves() throws Exception {
        try (Connection c = decode.connect(prefill.localEndpoint(), Duration.ofSeconds(2))) {
            assertThatThrownBy(() -> c.read(List.of(new ReadOp(47L * BLOCK, 0, 2 * BLOCK))))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThat(fabric.postedChains).isEmpty();
        }
    }

    @Test
    void aHostileEndpointIsRefusedNamingTheAttribute() {
        EndpointInfo good = prefill.localEndpoint();
        Map<String, String> attrs = new HashMap<>(good.attributes());
        attrs.put(RdmaEndpoint.RKEYS, "1,2");
        EndpointInfo bad = new EndpointInfo("rdma", good.host(), good.port(), good.regionSize(), good.segmentSizes(),
                "", attrs);
        assertThatThrownBy(() -> decode.connect(bad, Duration.ofSeconds(1))).isInstanceOf(TransferException.class)
                .hasMessageContaining("rkeys");
    }
}
