package io.distserve.kv.nvlink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.HostGpuDevice;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.EndpointRefusedException;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferResult;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportRegistry;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The nvlink transport over the device double: two "processes" of one host (two devices of one {@link
 * HostGpuDevice.Host}, two process ids), each with a KV pool in "device" memory.
 */
class NvlinkTransportTest {

    private static final Duration T = Duration.ofSeconds(10);
    private static final String HOST = "boot:test-host";
    private final List<AutoCloseable> open = new ArrayList<>();
    private final HostGpuDevice.Host host = new HostGpuDevice.Host();

    private record Engine(HostGpuDevice device, DeviceRegion region, NvlinkTransport transport) {
    }

    private Engine engine(String bus, long pid, String hostId, int poolBytes, long seed) throws Exception {
        HostGpuDevice device = host.device(bus, 50);
        ByteBuffer pool = ByteBuffer.allocateDirect(poolBytes);
        if (seed != 0) {
            byte[] b = new byte[poolBytes];
            new Random(seed).nextBytes(b);
            pool.put(b).clear();
        }
        device.bind();
        DeviceRegion region = new DeviceRegion(device, device.wrap(pool));
        NvlinkTransport t = new NvlinkTransport(TransportOptions.defaults(), hostId, pid);
        open.add(t);
        t.register(region);
        t.start();
        return new Engine(device, region, t);
    }

    @AfterEach
    void closeAll() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
        assertThat(Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive).map(Thread::getName)
                .filter(n -> n.startsWith("kv-nvlink-") || n.startsWith("host-gpu-"))).isEmpty();
    }

    private static byte[] bytes(DeviceRegion r, long offset, int length) {
        byte[] out = new byte[length];
        ((HostGpuDevice.HostMemory) r.memory()).bytes().position((int) offset).get(out);
        return out;
    }

    @Test
    void theEndpointCarriesTheHandleAndWhereItCameFrom() throws Exception {
        Engine prefill = engine("0000:19:00.0", 101, HOST, 1 << 16, 1);
        EndpointInfo e = prefill.transport().localEndpoint();
        assertThat(e.transport()).isEqualTo("nvlink");
        assertThat(e.regionSize()).isEqualTo(1 << 16);
        assertThat(e.attributes()).containsEntry("pci_bus_id", "0000:19:00.0").containsEntry("host_id", HOST)
                .containsEntry("pid", "101").containsEntry("ipc_offset", "0");
        assertThat(e.attributes().get("ipc_handle")).hasSize(128);
    }

    @Test
    void blocksArriveByteExactWithOneGatherPerRead() throws Exception {
        Engine prefill = engine("0000:19:00.0", 101, HOST, 4 << 20, 7);
        Engine decode = engine("0000:19:00.0", 202, HOST, 4 << 20, 0); // same GPU, another process
        Random rnd = new Random(3);
        int block = 48 << 10;
        try (Connection c = decode.transport().connect(prefill.transport().localEndpoint(), T)) {
            for (int round = 0; round < 10; round++) {
                List<Integer> src = shuffled(rnd, (4 << 20) / block);
                List<Integer> dst = shuffled(rnd, (4 << 20) / block);
                List<ReadOp> ops = new ArrayList<>();
                for (int i = 0; i < 1 + rnd.nextInt(40); i++) {
                    ops.add(new ReadOp((long) src.get(i) * block, (long) dst.get(i) * block, block));
                }
                int before = decode.device().gathers();
                TransferResult r = c.read(ops).await(T);
                assertThat(decode.device().gathers() - before).as("launches for one read").isEqualTo(1);
                assertThat(r.bytes()).isEqualTo((long) ops.size() * block);
                for (ReadOp op : ops) {
                    assertThat(bytes(decode.region(), op.localOffset(), block))
                            .isEqualTo(bytes(prefill.region(), op.remoteOffset(), block));
                }
            }
        }
        assertThat(decode.device().liveImports()).as("the peer's pool unmapped on close").isZero();
        assertThat(decode.device().liveStreams()).isZero();
    }

    @Test
    void concurrentReadsOnOneConnectionAllComplete() throws Exception {
        Engine prefill = engine("0000:19:00.0", 101, HOST, 1 << 20, 9);
        Engine decode = engine("0000:3b:00.0", 202, HOST, 1 << 20, 0); // another GPU of the host
        Connection c = decode.transport().connect(prefill.transport().localEndpoint(), T);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> results = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                int lane = t;
                results.add(pool.submit(() -> {
                    decode.device().bind(); // callers are engine threads; the connection binds for them anyway
                    for (int i = 0; i < 20; i++) {
                        long off = (long) (lane * 20 + i) * 4096;
                        c.read(List.of(new ReadOp(off, off, 4096))).await(T);
                    }
                    return null;
                }));
            }
            for (Future<?> f : results) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        assertThat(bytes(decode.region(), 0, 80 * 4096)).isEqualTo(bytes(prefill.region(), 0, 80 * 4096));
        c.close();
    }

    @Test
    void opsOutsideEitherPoolAreRefusedBeforeAnythingMoves() throws Exception {
        Engine prefill = engine("0000:19:00.0", 101, HOST, 1 << 16, 1);
        Engine decode = engine("0000:19:00.0", 202, HOST, 1 << 15, 0);
        try (Connection c = decode.transport().connect(prefill.transport().localEndpoint(), T)) {
            int before = decode.device().gathers();
            assertThatThrownBy(() -> c.read(List.of(new ReadOp(1 << 16, 0, 16))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("remote region");
            assertThatThrownBy(() -> c.read(List.of(new ReadOp(0, (1 << 15) - 8, 16))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("local region");
            assertThat(decode.device().gathers()).isEqualTo(before);
            assertThat(c.read(List.of()).await(T).bytes()).isZero();
        }
    }

    @Test
    void anEndpointOfAnotherHostIsRefusedWithoutTouchingTheDriver() throws Exception {
        Engine prefill = engine("0000:19:00.0", 101, "boot:other-host", 1 << 16, 1);
        Engine decode = engine("0000:19:00.0", 202, HOST, 1 << 16, 0);
        assertThatThrownBy(() -> decode.transport().connect(prefill.transport().localEndpoint(), T))
                .isInstanceOf(EndpointRefusedException.class).hasMessageContaining("boot:other-host")
                .hasMessageContaining("one host");
        assertThat(decode.device().liveImports()).isZero();
    }

    @Test
    void ownHandlesForgedHandlesAndOversizedClaimsAreRefused() throws Exception {
        Engine prefill = engine("0000:19:00.0", 101, HOST, 1 << 16, 1);
        Engine decode = engine("0000:19:00.0", 202, HOST, 1 << 16, 0);
        EndpointInfo real = prefill.transport().localEndpoint();
        // this very process
        assertThatThrownBy(() -> prefill.transport().connect(real, T))
                .isInstanceOf(EndpointRefusedException.class).hasMessageContaining("this very process");
        // a well-formed handle nobody exported
        Map<String, String> forged = new HashMap<>(real.attributes());
        forged.put("ipc_handle", "ab".repeat(64));
        assertThatThrownBy(() -> decode.transport().connect(with(real, forged, real.regionSize()), T))
                .isInstanceOf(EndpointRefusedException.class).hasMessageContaining("cannot open the CUDA IPC handle");
        // a real handle that claims more than its allocation (reads past it would be out of bounds on the GPU)
        assertThatThrownBy(() -> decode.transport().connect(with(real, real.attributes(), 2L << 16), T))
                .isInstanceOf(EndpointRefusedException.class).hasMessageContaining("allocation holds");
        Map<String, String> shifted = new HashMap<>(real.attributes());
        shifted.put("ipc_offset", "16");
        assertThatThrownBy(() -> decode.transport().connect(with(real, shifted, real.regionSize()), T))
                .isInstanceOf(EndpointRefusedException.class).hasMessageContaining("allocation holds");
        // malformed: refused before any of that
        Map<String, String> broken = new HashMap<>(real.attributes());
        broken.put("ipc_handle", "12");
        assertThatThrownBy(() -> decode.transport().connect(with(real, broken, real.regionSize()), T))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ipc_handle");
        assertThat(decode.device().liveImports()).as("a refused handle leaves nothing mapped").isZero();
    }

    @Test
    void registryOffersNvlinkOnlyForDeviceMemory() throws Exception {
        TransportRegistry registry = TransportRegistry.discover();
        assertThat(registry.names()).contains("tcp", "nvlink");
        var nvlink = registry.provider("NVLink").orElseThrow();
        Engine e = engine("0000:19:00.0", 1, HOST, 4096, 0);
        assertThat(nvlink.unsupportedReason(e.region())).isEmpty();
        assertThat(nvlink.unsupportedReason(io.distserve.kv.transfer.ByteBufferRegion.allocateDirect(1, 64)))
                .hasValueSatisfying(r -> assertThat(r).contains("host memory"));
        assertThat(registry.provider("tcp").orElseThrow().unsupportedReason(e.region())).isEmpty();
        if (!nvlink.isAvailable()) { // CI: no driver; the reason says so in one line
            assertThat(nvlink.unavailableReason()).hasValueSatisfying(r -> assertThat(r).doesNotContain("\n"));
            assertThat(registry.availableNames()).doesNotContain("nvlink");
        }
    }

    private static EndpointInfo with(EndpointInfo e, Map<String, String> attrs, long regionSize) {
        return new EndpointInfo(e.transport(), e.host(), e.port(), regionSize, List.of(regionSize), e.token(), attrs);
    }

    private static List<Integer> shuffled(Random rnd, int n) {
        List<Integer> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add(i);
        }
        Collections.shuffle(l, rnd);
        return l;
    }
}
