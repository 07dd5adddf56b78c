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

    @Test
    void runsAreSplitAtTheMaxMessageSizeAndAddressedInTheirSegments() {
        WorkRequestPlanner p = new WorkRequestPlanner(300, 64);
        List<ReadWorkRequest> wrs = p.plan(7, List.of(new ReadOp(1100, 200, 700)), LAYOUT, LOCAL, LAYOUT, REMOTE);
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
        List<ReadWorkRequest> wrs = p.plan(0, List.of(new ReadOp(0, 0, 100)), LAYOUT, LOCAL, LAYOUT, REMOTE);
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
     * The number this transport posts for a 2,048-token qwen3-8b migration (blocks of 64 tokens, 36 layers, 8 KV
     * heads of 128, bf16, all layers of a block contiguous): 32 blocks of 9 MiB. Blocks a sequence took from the
     * free list one after another are adjacent, so the planner coalesces them; scattered ones cost one READ each.
     * LMDeploy's DistServe posts one per (layer, block): 36 x 32 = 1,152 (2,304 with K and V apart).
     */
    @Test
    void aTwoThousandTokenQwen3EightBMigrationIsAFewReads() {
        long bytesPerBlock = 36L * 2 * 8 * 128 * 2 * 64;
        assertThat(bytesPerBlock).isEqualTo(9_437_184);
        int blocks = 2048 / 64;
        long poolBytes = 1000 * bytesPerBlock;
        RegionLayout pool = RegionLayout.single(poolBytes);
        List<RdmaVerbs.Segment> one = List.of(new RdmaVerbs.Segment(0x1000_0000_0000L, 1, 2));
        ReadPlanner planner = new ReadPlanner(Integer.MAX_VALUE);
        WorkRequestPlanner wr = new WorkRequestPlanner(1L << 30, 64);
        List<ReadOp> adjacent = new ArrayList<>();
        List<ReadOp> scattered = new ArrayList<>();
        for (int i = 0; i < blocks; i++) {
            adjacent.add(new ReadOp((100L + i) * bytesPerBlock, (500L + i) * bytesPerBlock, bytesPerBlock));
            scattered.add(new ReadOp((100L + 3 * i) * bytesPerBlock, (500L + 2 * i) * bytesPerBlock, bytesPerBlock));
        }
        List<ReadWorkRequest> a = wr.plan(0, planner.plan(adjacent, pool, pool).transfers(), pool, one, pool, one);
        List<ReadWorkRequest> s = wr.plan(0, planner.plan(scattered, pool, pool).transfers(), pool, one, pool, one);
        // 302 MB in one run, under the NIC's 1 GiB max_msg_sz: one READ
        assertThat(a).hasSize(1);
        assertThat(a.get(0).length()).isEqualTo(blocks * (int) bytesPerBlock);
        assertThat(s).hasSize(32);
        assertThat(s.stream().filter(ReadWorkRequest::signaled).count()).isEqualTo(1);
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
        return new HashMap<>(new RdmaEndpoint(REMOTE, "IB", true).attributes());
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
                {RdmaEndpoint.REMOTE_ADDRS, "0x1", "one address and key per segment"},
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
        assertThatThrownBy(() -> RdmaEndpoint.parse(new EndpointInfo("tcp", "h", 1, 2000, List.of(1000L, 1000L), "",
                goodAttrs()))).hasMessageContaining("not an rdma endpoint");
        assertThatThrownBy(() -> RdmaEndpoint.parse(new EndpointInfo("rdma", "h", 0, 2000, List.of(1000L, 1000L), "",
                goodAttrs()))).hasMessageContaining("host:port");
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
