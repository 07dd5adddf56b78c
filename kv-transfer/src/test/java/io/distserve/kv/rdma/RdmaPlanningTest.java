package io.distserve.kv.rdma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.ReadPlanner;
import io.distserve.kv.transfer.RegionLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Work-request planning, endpoint validation and availability, apart from any verbs call. */
class RdmaPlanningTest {

    private static final List<RdmaVerbs.Segment> LOCAL = List.of(new RdmaVerbs.Segment(0x1000_0000L, 11, 12),
            new RdmaVerbs.Segment(0x2000_0000L, 21, 22));
    private static final List<RdmaVerbs.Segment> REMOTE = List.of(new RdmaVerbs.Segment(0x9000_0000L, 0, 91),
            new RdmaVerbs.Segment(0xA000_0000L, 0, 92));
    private static final RegionLayout LAYOUT = new RegionLayout(List.of(1000L, 1000L));
    private static final RegisteredLayout LOCAL_MRS = new RegisteredLayout(LAYOUT, LOCAL);
    private static final RegisteredLayout REMOTE_MRS = new RegisteredLayout(LAYOUT, REMOTE);

    @Test
    void runsAreSplitAtTheMaxMessageSizeAndAddressedInTheirSegments() {
        WorkRequestPlanner p = new WorkRequestPlanner(300, 64);
        List<ReadWorkRequest> wrs = p.plan(7, List.of(new ReadOp(1100, 200, 700)), LOCAL_MRS, REMOTE_MRS);
        assertThat(wrs).extracting(ReadWorkRequest::length).containsExactly(300, 300, 100);
        assertThat(wrs.get(0).remoteAddress()).isEqualTo(0xA000_0000L + 100);
        assertThat(wrs.get(0).rkey()).isEqualTo(92);
        assertThat(wrs.get(0).localAddress()).isEqualTo(0x1000_0000L + 200);
        assertThat(wrs.get(0).lkey()).isEqualTo(11);
        assertThat(wrs.get(2).remoteAddress()).isEqualTo(0xA000_0000L + 700);
        assertThat(wrs).extracting(ReadWorkRequest::batch).containsOnly(7);
        assertThat(wrs).extracting(ReadWorkRequest::index).containsExactly(0, 1, 2);
        assertThat(wrs).extracting(ReadWorkRequest::signaled).containsExactly(false, false, true);
    }

    @Test
    void theChainIsSignalledEverySignalEveryRequestsAndAtItsEnd() {
        WorkRequestPlanner p = new WorkRequestPlanner(10, 4);
        List<ReadWorkRequest> wrs = p.plan(0, List.of(new ReadOp(0, 0, 100)), LOCAL_MRS, REMOTE_MRS);
        assertThat(wrs).hasSize(10);
        List<Integer> signalled = new ArrayList<>();
        for (ReadWorkRequest r : wrs) {
            if (r.signaled()) {
                signalled.add(r.index());
            }
        }
        assertThat(signalled).containsExactly(3, 7, 9);
        assertThat(ReadWorkRequest.wrId(5, 9) >>> 32).isEqualTo(5);
    }

    /**
     * What this transport posts for a 2,048-token qwen3-8b migration (blocks of 64 tokens, 36 layers, 8 KV heads of
     * 128, bf16, K and V, all layers of a block contiguous): 32 blocks of 9 MiB, 302 MB, from a pool of 1,000 blocks
     * registered in 1 GiB memory regions, over the default 2 queue pairs (kv-transfer/BENCHMARKS.md). Blocks a
     * sequence took from the free list one after another are adjacent and coalesce; scattered ones cost a READ each.
     * LMDeploy's DistServe posts one per (layer, block): 36 x 32 = 1,152 (2,304 with K and V apart).
     */
    @Test
    void aTwoThousandTokenQwen3EightBMigrationIsAFewReadsOrAFewStagingRoundTrips() {
        long block = 36L * 2 * 8 * 128 * 2 * 64;
        assertThat(block).isEqualTo(9_437_184);
        RegionLayout pool = RegionLayout.single(1000 * block);
        RegionLayout regions = PoolRegistration.pieces(pool, PoolRegistration.DEFAULT_MAX_MR_BYTES);
        assertThat(regions.segmentCount()).isEqualTo(9); // 9.4 GB in 1 GiB regions
        List<RdmaVerbs.Segment> keys = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            keys.add(new RdmaVerbs.Segment(0x1000_0000_0000L + i * (2L << 30), i, i));
        }
        RegisteredLayout registered = new RegisteredLayout(regions, keys);
        ReadPlanner planner = new ReadPlanner(Integer.MAX_VALUE);
        WorkRequestPlanner wr = new WorkRequestPlanner(1L << 30, 64);
        StripePlanner stripes = new StripePlanner(1 << 20);
        List<ReadOp> inOneRegion = new ArrayList<>();
        List<ReadOp> acrossARegionEnd = new ArrayList<>();
        List<ReadOp> scattered = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            inOneRegion.add(new ReadOp((10L + i) * block, (500L + i) * block, block));
            acrossARegionEnd.add(new ReadOp((100L + i) * block, (500L + i) * block, block));
            scattered.add(new ReadOp((100L + 3 * i) * block, (500L + 2 * i) * block, block));
        }
        // direct (host pools, or GPU pools through GPUDirect): READs per queue pair
        java.util.function.Function<List<ReadOp>, List<List<ReadWorkRequest>>> direct = ops -> stripes.stripe(
                planner.plan(ops, regions, regions).transfers(), 2).stream()
                .map(lane -> wr.plan(0, lane, registered, registered)).toList();
        List<List<ReadWorkRequest>> a = direct.apply(inOneRegion);
        assertThat(a).extracting(List::size).containsExactly(1, 1); // 151 MB on each queue pair
        assertThat(a.get(0).get(0).length()).isEqualTo(16 * (int) block);
        assertThat(direct.apply(acrossARegionEnd)).extracting(List::size).containsExactly(2, 1);
        List<List<ReadWorkRequest>> s = direct.apply(scattered);
        assertThat(s).extracting(List::size).containsExactly(16, 16);
        assertThat(s).allSatisfy(lane -> assertThat(lane.stream().filter(ReadWorkRequest::signaled)).hasSize(1));
        // staged (a GPU pool without GPUDirect): one STAGE round trip and one READ per 16 MiB slot
        int slot = 16 << 20;
        assertThat(StagedPipeline.cut(planner.plan(inOneRegion, pool, pool).transfers(), slot)).hasSize(18);
        assertThat(StagedPipeline.cut(planner.plan(scattered, pool, pool).transfers(), slot)).hasSize(32);
    }

    @Test
    void badPlannerSettingsAreRefused() {
        assertThatThrownBy(() -> new WorkRequestPlanner(0, 4)).hasMessageContaining("maxMessageBytes");
        assertThatThrownBy(() -> new WorkRequestPlanner(1L << 31, 4)).hasMessageContaining("maxMessageBytes");
        assertThatThrownBy(() -> new WorkRequestPlanner(100, 0)).hasMessageContaining("signalEvery");
    }

    private static EndpointInfo endpoint(Map<String, String> attrs) {
        return new EndpointInfo("rdma", "10.0.0.2", 7471, 2000, List.of(1000L, 1000L), "", attrs);
    }

    private static Map<String, String> goodAttrs() {
        return new HashMap<>(new RdmaEndpoint(REMOTE, 1000, 0, "IB", true, false).attributes());
    }

    @Test
    void anEndpointRoundTrips() {
        RdmaEndpoint e = RdmaEndpoint.parse(endpoint(goodAttrs()));
        assertThat(e.segments()).extracting(RdmaVerbs.Segment::address).containsExactly(0x9000_0000L, 0xA000_0000L);
        assertThat(e.segments()).extracting(RdmaVerbs.Segment::rkey).containsExactly(91, 92);
        assertThat(e.linkType()).isEqualTo("IB");
        assertThat(e.gpuDirect()).isTrue();
    }

    @Test
    void hostileEndpointsAreRefusedNamingTheAttribute() {
        String[][] cases = {
                {RdmaEndpoint.REMOTE_ADDRS, "0x1", "one address and key per memory region (2 of"},
                {RdmaEndpoint.MR_BYTES, "1", "one address and key per memory region (2000 of"},
                {RdmaEndpoint.MR_BYTES, "0", "mr_bytes must be in"},
                {RdmaEndpoint.MR_BYTES, "2147483648", "mr_bytes must be in"},
                {RdmaEndpoint.MR_BYTES, "lots", "mr_bytes must be an integer"},
                {RdmaEndpoint.MR_BYTES, "", "no mr_bytes"},
                {RdmaEndpoint.STAGING_PORT, "70000", "staging_port must be a port"},
                {RdmaEndpoint.STAGING_PORT, "22", "needs its token"},
                {RdmaEndpoint.DISABLE_GDR, "true", "offers a GPUDirect pool"},
                {RdmaEndpoint.DISABLE_GDR, "perhaps", "true or false"},
                {RdmaEndpoint.REMOTE_ADDRS, "12,0x2", "0x and 1 to 16 hex digits"},
                {RdmaEndpoint.REMOTE_ADDRS, "0xffffffffffffffff,0x2", "overflows"},
                {RdmaEndpoint.REMOTE_ADDRS, "0x1ffffffffffffffff,0x2", "hex digits"},
                {RdmaEndpoint.RKEYS, "1,-2", "unsigned 32-bit"},
                {RdmaEndpoint.RKEYS, "1,4294967296", "unsigned 32-bit"},
                {RdmaEndpoint.RKEYS, "", "no rkeys"},
                {RdmaEndpoint.LINK_TYPE, "Ethernet", "RoCE or IB"},
                {RdmaEndpoint.GPU_DIRECT, "maybe", "true or false"},
        };
        for (String[] c : cases) {
            Map<String, String> a = goodAttrs();
            a.put(c[0], c[1]);
            assertThatThrownBy(() -> RdmaEndpoint.parse(endpoint(a))).as(c[0] + "=" + c[1])
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(c[2]);
        }
        Map<String, String> neither = goodAttrs();
        neither.remove(RdmaEndpoint.REMOTE_ADDRS);
        neither.remove(RdmaEndpoint.RKEYS);
        assertThatThrownBy(() -> RdmaEndpoint.parse(endpoint(neither))).hasMessageContaining("offers neither");
        assertThatThrownBy(() -> RdmaEndpoint.parse(new EndpointInfo("tcp", "h", 1, 2000, List.of(1000L, 1000L), "",
                goodAttrs()))).hasMessageContaining("not an rdma endpoint");
        assertThatThrownBy(() -> RdmaEndpoint.parse(new EndpointInfo("rdma", "h", 0, 2000, List.of(1000L, 1000L), "",
                goodAttrs()))).hasMessageContaining("host:port");
    }

    @Test
    void stripingSpreadsABatchEvenlyOverTheQueuePairsSplittingAtMostLanesMinusOneRuns() {
        StripePlanner p = new StripePlanner(100);
        // one coalesced run of 3000 bytes over 3 queue pairs: 1000 each
        List<List<ReadOp>> one = p.stripe(List.of(new ReadOp(5000, 0, 3000)), 3);
        assertThat(one).hasSize(3);
        assertThat(one).allSatisfy(lane -> assertThat(lane.stream().mapToLong(ReadOp::length).sum()).isEqualTo(1000));
        assertThat(one.get(1).get(0)).isEqualTo(new ReadOp(6000, 1000, 1000));
        // uneven runs: shares of ceil(1001 / 2) = 501, one run split where a share ends
        List<ReadOp> runs = List.of(new ReadOp(0, 0, 300), new ReadOp(1000, 300, 400), new ReadOp(2000, 700, 301));
        List<List<ReadOp>> two = p.stripe(runs, 2);
        assertThat(two.get(0)).containsExactly(new ReadOp(0, 0, 300), new ReadOp(1000, 300, 201));
        assertThat(two.get(1)).containsExactly(new ReadOp(1201, 501, 199), new ReadOp(2000, 700, 301));
        // no share under the minimum: a small batch stays on one queue pair, a slightly larger one on two
        assertThat(p.stripe(List.of(new ReadOp(0, 0, 80)), 4)).extracting(List::size).containsExactly(1, 0, 0, 0);
        assertThat(p.stripe(List.of(new ReadOp(0, 0, 150)), 4).get(1)).containsExactly(new ReadOp(100, 100, 50));
        assertThat(p.stripe(List.of(), 2)).allMatch(List::isEmpty);
        assertThatThrownBy(() -> p.stripe(runs, 0)).hasMessageContaining("lanes");
    }

    @Test
    void aPoolIsRegisteredInPiecesOfAtMostMrBytesAndPeersDeriveTheSamePieces() {
        RegionLayout pool = new RegionLayout(List.of(2500L, 1000L));
        RegionLayout pieces = PoolRegistration.pieces(pool, 1000);
        assertThat(pieces.segmentSizes()).containsExactly(1000L, 1000L, 500L, 1000L);
        assertThat(PoolRegistration.pieceCount(pool, 1000)).isEqualTo(4);
        assertThat(PoolRegistration.pieceCount(RegionLayout.single(1L << 40), 1)).isEqualTo(1L << 40);
        assertThatThrownBy(() -> PoolRegistration.pieces(pool, 0)).hasMessageContaining("largest memory region");
        // a READ planned against the pieces never crosses one's end
        ReadPlanner planner = new ReadPlanner(Integer.MAX_VALUE);
        assertThat(planner.plan(List.of(new ReadOp(900, 900, 1200)), pieces, pieces).transfers())
                .containsExactly(new ReadOp(900, 900, 100), new ReadOp(1000, 1000, 1000), new ReadOp(2000, 2000, 100));
    }

    @Test
    void stagedPiecesAreAtMostASlot() {
        List<ReadOp> cut = StagedPipeline.cut(List.of(new ReadOp(0, 100, 2500), new ReadOp(9000, 0, 10)), 1000);
        assertThat(cut).containsExactly(new ReadOp(0, 100, 1000), new ReadOp(1000, 1100, 1000),
                new ReadOp(2000, 2100, 500), new ReadOp(9000, 0, 10));
    }

    @Test
    void underDisableGdrAGpuDirectPoolIsOfferedStagedOnlyAndHostPoolsStayDirect() {
        Map<String, String> gdr = new HashMap<>(new RdmaEndpoint(REMOTE, 1000, 7999, "RoCE", true, false)
                .attributes());
        EndpointInfo own = new EndpointInfo("rdma", "10.0.0.2", 7471, 2000, List.of(1000L, 1000L), "secret", gdr);
        RdmaEndpoint paired = RdmaEndpoint.parse(RdmaEndpoint.forPair(own, "IB", true));
        assertThat(paired.direct()).isFalse();
        assertThat(paired.stagingPort()).isEqualTo(7999);
        assertThat(paired.disableGdr()).isTrue();
        assertThat(paired.linkType()).isEqualTo("IB");
        RdmaEndpoint plain = RdmaEndpoint.parse(RdmaEndpoint.forPair(own, "RoCE", false));
        assertThat(plain.direct()).isTrue();
        assertThat(plain.disableGdr()).isFalse();
        EndpointInfo host = endpoint(new HashMap<>(new RdmaEndpoint(REMOTE, 1000, 0, "RoCE", false, false)
                .attributes()));
        RdmaEndpoint hostPaired = RdmaEndpoint.parse(RdmaEndpoint.forPair(host, "RoCE", true));
        assertThat(hostPaired.direct()).isTrue();
        assertThat(hostPaired.disableGdr()).isTrue();
        Map<String, String> noStaging = new HashMap<>(gdr);
        noStaging.remove(RdmaEndpoint.STAGING_PORT);
        EndpointInfo broken = new EndpointInfo("rdma", "h", 1, 2000, List.of(1000L, 1000L), "", noStaging);
        assertThatThrownBy(() -> RdmaEndpoint.forPair(broken, "RoCE", true)).hasMessageContaining("staging channel");
        assertThatThrownBy(() -> RdmaEndpoint.forPair(own, "Ethernet", true)).hasMessageContaining("RoCE or IB");
    }

    @Test
    void gpuDirectNeedsAPeerMemoryModule(@TempDir Path sys) throws Exception {
        GpuDirectSupport gdr = new GpuDirectSupport(sys);
        assertThat(gdr.missing()).get().asString().contains("nvidia_peermem").contains("nv_peer_mem")
                .doesNotContain("\n");
        Files.createDirectory(sys.resolve("nv_peer_mem"));
        assertThat(gdr.missing()).isEmpty();
        Files.delete(sys.resolve("nv_peer_mem"));
        Files.createDirectory(sys.resolve("nvidia_peermem"));
        assertThat(gdr.missing()).isEmpty();
    }

    @Test
    void badRdmaSettingsAreRefusedNamingTheKey() {
        String[][] cases = {{"rdma.linkType", "Ethernet"}, {"rdma.disableGdr", "yes"}, {"rdma.maxMessageBytes", "0"},
                {"rdma.signalEvery", "x"}, {"rdma.minStripeBytes", "0"}, {"rdma.maxMrBytes", "4294967296"},
                {"rdma.stagingSlots", "65"}, {"rdma.stagingSlotBytes", "100"}};
        for (String[] c : cases) {
            var o = new io.distserve.kv.transfer.TransportOptions("127.0.0.1", 0, null, 2, 1 << 20, 0,
                    java.time.Duration.ofSeconds(1), Map.of(c[0], c[1]));
            assertThatThrownBy(() -> RdmaOptions.from(o)).as(c[0]).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(c[0]);
        }
        RdmaOptions d = RdmaOptions.from(io.distserve.kv.transfer.TransportOptions.defaults());
        assertThat(d.queuePairs()).isEqualTo(2); // like tcp's streams
        assertThat(d.sendDepth()).isEqualTo(128);
    }

    /** This machine has no libdisni and no RDMA device: the reason is one line and says so. */
    @Test
    void onThisMachineRdmaIsUnavailableWithAOneLineReason() {
        var reason = new RdmaTransportProvider().unavailableReason();
        org.junit.jupiter.api.Assumptions.assumeTrue(reason.isPresent(), "this machine can run RDMA");
        assertThat(reason.get()).doesNotContain("\n").containsAnyOf("libdisni", "RDMA device");
        assertThatThrownBy(() -> new RdmaTransportProvider().create(io.distserve.kv.transfer.TransportOptions.defaults()))
                .isInstanceOf(io.distserve.kv.transfer.TransportUnavailableException.class)
                .hasMessageContaining(reason.get());
        assertThat(io.distserve.kv.transfer.TransportRegistry.discover().names()).contains("rdma");
    }

    @Test
    void theDeviceCheckSaysWhatIsMissing(@TempDir Path dir) throws Exception {
        assertThat(RdmaAvailability.devices(dir.resolve("missing"))).get().asString().contains("does not exist");
        assertThat(RdmaAvailability.devices(dir)).get().asString().contains("is empty");
        Files.createDirectory(dir.resolve("mlx5_0"));
        assertThat(RdmaAvailability.devices(dir)).isEmpty();
        RdmaAvailability both = new RdmaAvailability(List.of(() -> java.util.Optional.of("first"),
                () -> java.util.Optional.of("second")));
        assertThat(both.reason()).contains("first");
    }
}
