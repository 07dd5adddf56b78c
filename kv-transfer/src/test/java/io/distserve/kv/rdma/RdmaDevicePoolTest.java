package io.distserve.kv.rdma;

import static io.distserve.kv.rdma.RdmaTestPools.assertSameBytes;
import static io.distserve.kv.rdma.RdmaTestPools.scattered;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.HostGpuDevice;
import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * GPU pools over rdma, on the fake fabric and the device double (whose copies really are asynchronous, with random
 * delays: a slot READ before its device-to-host copy has run, or a landing buffer reused before its host-to-device
 * copy has, gives wrong bytes). Every combination of GPUDirect and staging on either side, the per-pair
 * --disable-gdr, and the failures of the staged path; nothing may be left registered, pinned or running after.
 */
class RdmaDevicePoolTest {

    private static final Duration T = Duration.ofSeconds(20);
    private static final int POOL = 256 * 1024;

    private final FakeFabric fabric = new FakeFabric();
    private final List<AutoCloseable> open = new ArrayList<>();
    private final List<HostGpuDevice> devices = new ArrayList<>();
    private GpuDirectSupport withPeerMemory;
    private GpuDirectSupport withoutPeerMemory;
    private long nextBase = 0x7000_0000_0000L;

    @BeforeEach
    void modules(@TempDir Path sys) throws Exception {
        Files.createDirectories(sys.resolve("peer/module/nvidia_peermem"));
        Files.createDirectories(sys.resolve("plain/module"));
        withPeerMemory = new GpuDirectSupport(sys.resolve("peer/module"));
        withoutPeerMemory = new GpuDirectSupport(sys.resolve("plain/module"));
    }

    /** Small slots, regions and READs, so every read spans several of each and the slots wrap. */
    private static Map<String, String> settings(Map<String, String> more) {
        Map<String, String> m = new HashMap<>(Map.of(RdmaOptions.STAGING_SLOTS, "3",
                RdmaOptions.STAGING_SLOT_BYTES, "4096", RdmaOptions.MAX_MR, "40000",
                RdmaOptions.MAX_MESSAGE, "10000", RdmaOptions.SIGNAL_EVERY, "2"));
        m.putAll(more);
        return m;
    }

    private DeviceRegion gpuPool(long seed) {
        HostGpuDevice device = HostGpuDevice.standalone(30);
        devices.add(device);
        return device.pool(POOL, seed);
    }

    private RdmaTransport transport(MemoryRegion pool, GpuDirectSupport gdr, Map<String, String> more)
            throws TransferException {
        HostGpuDevice device = pool instanceof DeviceRegion d ? (HostGpuDevice) d.device() : null;
        RdmaTransport t = new RdmaTransport(fabric.verbs(nextBase, device), RdmaTestPools.options(2, settings(more)),
                gdr);
        nextBase += 0x10_0000_0000L;
        open.add(t);
        t.register(pool);
        t.start();
        return t;
    }

    /** A prefill engine's GPU pool (seeded) and a decode engine's (zeros), each served by a started transport. */
    private record Pair(DeviceRegion source, DeviceRegion target, RdmaTransport prefill, RdmaTransport decode) {
    }

    private Pair pair(long seed, GpuDirectSupport prefillGdr, GpuDirectSupport decodeGdr) throws TransferException {
        DeviceRegion source = gpuPool(seed);
        DeviceRegion target = gpuPool(0);
        return new Pair(source, target, transport(source, prefillGdr, Map.of()), transport(target, decodeGdr,
                Map.of()));
    }

    @AfterEach
    void nothingIsLeft() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
        assertThat(RdmaTestPools.liveThreads()).as("kv-rdma threads left after close").isEmpty();
        assertThat(fabric.liveRegistrations()).as("memory regions left registered").isZero();
        assertThat(fabric.liveQueuePairs()).as("queue pairs left open").isZero();
        for (HostGpuDevice d : devices) {
            assertThat(d.livePinnedBuffers()).as("pinned buffers left").isZero();
            assertThat(d.liveStreams()).as("streams left").isZero();
        }
    }

    private static void pullRounds(Connection c, MemoryRegion remote, MemoryRegion local, int rounds, long seed)
            throws Exception {
        Random rnd = new Random(seed);
        for (int round = 0; round < rounds; round++) {
            List<ReadOp> ops = scattered(rnd, remote.size(), local.size());
            c.read(ops).await(T);
            assertSameBytes(remote, local, ops);
        }
    }

    @Test
    void withGpuDirectOnBothSidesTheNicReadsAndWritesGpuMemoryWithNoStaging() throws Exception {
        Pair p = pair(5, withPeerMemory, withPeerMemory);
        EndpointInfo e = p.prefill().localEndpoint();
        RdmaEndpoint parsed = RdmaEndpoint.parse(e);
        assertThat(parsed.gpuDirect()).isTrue();
        assertThat(parsed.segments()).hasSize(7); // 256 KiB in regions of at most 40,000 bytes
        assertThat(parsed.stagingPort()).isPositive(); // kept for pairs under --disable-gdr
        try (Connection c = p.decode().connect(e, T)) {
            pullRounds(c, p.source(), p.target(), 8, 11);
            // one READ crossing region ends on both sides
            c.read(List.of(new ReadOp(39_000, 79_500, 82_000))).await(T);
            assertSameBytes(p.source(), p.target(), List.of(new ReadOp(39_000, 79_500, 82_000)));
        }
        assertThat(p.prefill().stagingSessionCount()).isZero();
        assertThat(devices.get(1).livePinnedBuffers()).isZero();
    }

    @Test
    void withoutPeerMemoryThePrefillStagesAndTheDecodeLandsThroughPinnedBuffers() throws Exception {
        Pair p = pair(6, withoutPeerMemory, withoutPeerMemory);
        RdmaEndpoint parsed = RdmaEndpoint.parse(p.prefill().localEndpoint());
        assertThat(parsed.direct()).isFalse();
        assertThat(parsed.gpuDirect()).isFalse();
        try (Connection c = p.decode().connect(p.prefill().localEndpoint(), T)) {
            assertThat(devices.get(1).livePinnedBuffers()).isEqualTo(3); // the landing slots
            pullRounds(c, p.source(), p.target(), 8, 12);
            assertThat(p.prefill().stagingSessionCount()).isEqualTo(1);
        }
    }

    @Test
    void aStagedPrefillLandsStraightInAGpuDirectDecodePool() throws Exception {
        Pair p = pair(7, withoutPeerMemory, withPeerMemory);
        try (Connection c = p.decode().connect(p.prefill().localEndpoint(), T)) {
            pullRounds(c, p.source(), p.target(), 6, 13);
        }
        assertThat(devices.get(1).livePinnedBuffers()).isZero();
    }

    @Test
    void aGpuDirectPrefillIsReadIntoAStagedDecodesPinnedBuffers() throws Exception {
        Pair p = pair(8, withPeerMemory, withoutPeerMemory);
        try (Connection c = p.decode().connect(p.prefill().localEndpoint(), T)) {
            pullRounds(c, p.source(), p.target(), 6, 14);
        }
        assertThat(p.prefill().stagingSessionCount()).isZero();
    }

    @Test
    void aStagedGpuPoolIsReadIntoAHostPool() throws Exception {
        DeviceRegion source = gpuPool(9);
        ByteBufferRegion target = ByteBufferRegion.allocateDirect(2, POOL / 2);
        RdmaTransport prefill = transport(source, withoutPeerMemory, Map.of());
        RdmaTransport decode = transport(target, withPeerMemory, Map.of());
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            pullRounds(c, source, target, 6, 15);
        }
    }

    @Test
    void aPairUnderDisableGdrIsStagedOnBothSidesThoughBothPoolsAreRegistered() throws Exception {
        Pair p = pair(10, withPeerMemory, withPeerMemory);
        EndpointInfo paired = RdmaEndpoint.forPair(p.prefill().localEndpoint(), "IB", true);
        try (Connection c = p.decode().connect(paired, T)) {
            assertThat(devices.get(1).livePinnedBuffers()).isEqualTo(3);
            pullRounds(c, p.source(), p.target(), 6, 16);
            assertThat(p.prefill().stagingSessionCount()).isEqualTo(1);
        }
    }

    @Test
    void anEngineUnderDisableGdrOrWhoseDriverRefusesTheDevicePointerStagesItsPool() throws Exception {
        RdmaTransport disabled = transport(gpuPool(11), withPeerMemory, Map.of(RdmaOptions.DISABLE_GDR, "true"));
        assertThat(RdmaEndpoint.parse(disabled.localEndpoint()).direct()).isFalse();
        fabric.refuseDeviceMemory = true;
        DeviceRegion source = gpuPool(12);
        RdmaTransport refused = transport(source, withPeerMemory, Map.of());
        fabric.refuseDeviceMemory = false;
        assertThat(RdmaEndpoint.parse(refused.localEndpoint()).direct()).isFalse();
        DeviceRegion target = gpuPool(0);
        RdmaTransport decode = transport(target, withPeerMemory, Map.of());
        try (Connection c = decode.connect(refused.localEndpoint(), T)) {
            pullRounds(c, source, target, 3, 17);
        }
    }

    @Test
    void aFailedReadOfAStagedPieceFailsTheBatchNamingThePeerAndTheNextReadReconnects() throws Exception {
        Pair p = pair(13, withoutPeerMemory, withoutPeerMemory);
        try (Connection c = p.decode().connect(p.prefill().localEndpoint(), T)) {
            int connects = fabric.connects.get();
            fabric.mode = FakeFabric.Mode.FAIL_NEXT;
            TransferFuture f = c.read(List.of(new ReadOp(0, 0, 40_000)));
            assertThatThrownBy(() -> f.await(T)).isInstanceOf(TransferException.class)
                    .hasMessageContaining(p.prefill().localEndpoint().address())
                    .hasMessageContaining("IBV_WC_REM_ACCESS_ERR")
                    .hasMessageContaining("40000 bytes outstanding");
            pullRounds(c, p.source(), p.target(), 3, 18);
            assertThat(fabric.connects.get()).isEqualTo(connects + 2); // both queue pairs again
        }
    }

    @Test
    void theStagingChannelDyingFailsWhatWasInFlightAndTheNextReadReconnects() throws Exception {
        Pair p = pair(14, withoutPeerMemory, withoutPeerMemory);
        try (Connection c = p.decode().connect(p.prefill().localEndpoint(), T)) {
            fabric.mode = FakeFabric.Mode.HANG; // the first READs never complete: the batch stays in flight
            TransferFuture f = c.read(List.of(new ReadOp(0, 0, 40_000)));
            p.prefill().dropStagingSessions();
            assertThatThrownBy(() -> f.await(T)).isInstanceOf(TransferException.class)
                    .isNotInstanceOf(TransferTimeoutException.class)
                    .hasMessageContaining("staging channel to 127.0.0.1:")
                    .hasMessageContaining("outstanding");
            fabric.mode = FakeFabric.Mode.NORMAL;
            pullRounds(c, p.source(), p.target(), 3, 19);
        }
    }

    @Test
    void aStagedBatchThatHangsTimesOutOnlyOnceItsCopiesHaveRun() throws Exception {
        Pair p = pair(15, withoutPeerMemory, withoutPeerMemory);
        try (Connection c = p.decode().connect(p.prefill().localEndpoint(), T)) {
            fabric.mode = FakeFabric.Mode.HANG;
            TransferFuture hung = c.read(List.of(new ReadOp(0, 0, 40_000)));
            assertThatThrownBy(() -> hung.await(Duration.ofMillis(200))).isInstanceOf(TransferTimeoutException.class);
            assertThat(hung.isDone()).isTrue(); // failed by its stager before await threw
            fabric.mode = FakeFabric.Mode.NORMAL;
            pullRounds(c, p.source(), p.target(), 3, 20);
        }
    }

    @Test
    void aRunThePrefillCannotStageIsRefusedNamingWhy() throws Exception {
        Pair p = pair(16, withoutPeerMemory, withoutPeerMemory);
        EndpointInfo real = p.prefill().localEndpoint();
        // a stale endpoint claiming twice the pool: the decode engine plans reads the prefill engine refuses to stage
        EndpointInfo stale = new EndpointInfo(real.transport(), real.host(), real.port(), 2L * POOL,
                List.of(2L * POOL), real.token(), real.attributes());
        try (Connection c = p.decode().connect(stale, T)) {
            TransferFuture f = c.read(List.of(new ReadOp(POOL + 100, 0, 5000)));
            assertThatThrownBy(() -> f.await(T)).isInstanceOf(TransferException.class)
                    .hasMessageContaining("refused to stage").hasMessageContaining("outside the pool");
            pullRounds(c, p.source(), p.target(), 2, 21);
        }
    }

    @Test
    void aWrongStagingTokenIsRefusedAtConnect() throws Exception {
        RdmaTransport prefill = transport(gpuPool(17), withoutPeerMemory, Map.of());
        RdmaTransport decode = transport(gpuPool(0), withoutPeerMemory, Map.of());
        EndpointInfo real = prefill.localEndpoint();
        EndpointInfo forged = new EndpointInfo(real.transport(), real.host(), real.port(), real.regionSize(),
                real.segmentSizes(), "0".repeat(64), real.attributes());
        assertThatThrownBy(() -> decode.connect(forged, T)).isInstanceOf(TransferException.class)
                .hasMessageContaining("staging channel").hasMessageContaining("bad token");
    }
}
