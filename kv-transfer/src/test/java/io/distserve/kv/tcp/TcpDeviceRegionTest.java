package io.distserve.kv.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.HostGpuDevice;
import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransportOptions;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * tcp out of and into GPU memory, over the device double (whose copies really are asynchronous, with random
 * delays): the staging ring must wait for each copy before it sends or reuses a buffer, or the bytes come out wrong.
 */
class TcpDeviceRegionTest {

    private static final Duration T = Duration.ofSeconds(20);
    /** Small chunks and a short ring, so every transfer spans several chunks and wraps the ring. */
    private static final Map<String, String> STAGING = Map.of(StagingOptions.CHUNK_KEY, "4096",
            StagingOptions.BUFFERS_KEY, "3");
    private final List<AutoCloseable> open = new ArrayList<>();
    private final List<HostGpuDevice> devices = new ArrayList<>();

    private TcpTransport transport(MemoryRegion region, TransportOptions options) throws Exception {
        TcpTransport t = new TcpTransport(options);
        open.add(t);
        t.register(region);
        t.start();
        return t;
    }

    private static TransportOptions staged(TransportOptions o) {
        return new TransportOptions(o.bindHost(), o.port(), o.advertisedHost(), o.streamsPerConnection(),
                o.maxTransferBytes(), o.socketBufferBytes(), o.handshakeTimeout(), STAGING);
    }

    private DeviceRegion deviceRegion(int bytes, long seed) {
        HostGpuDevice device = HostGpuDevice.standalone(30);
        devices.add(device);
        return device.pool(bytes, seed);
    }

    @AfterEach
    void closeAllAndCheckForLeaks() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
        assertThat(ThreadLeaks.live()).as("kv-tcp threads left after close").isEmpty();
        for (HostGpuDevice d : devices) {
            assertThat(d.livePinnedBuffers()).as("pinned buffers left on %s", d.pciBusId()).isZero();
            assertThat(d.liveStreams()).as("streams left").isZero();
        }
    }

    private static byte[] bytes(MemoryRegion r, long offset, int length) {
        byte[] out = new byte[length];
        if (r instanceof DeviceRegion d) {
            ((HostGpuDevice.HostMemory) d.memory()).bytes().position((int) offset).get(out);
        } else {
            r.slice(offset, length).get(out);
        }
        return out;
    }

    private static void assertSameBytes(MemoryRegion remote, MemoryRegion local, List<ReadOp> ops) {
        for (ReadOp op : ops) {
            assertThat(bytes(local, op.localOffset(), (int) op.length())).as("bytes of %s", op)
                    .isEqualTo(bytes(remote, op.remoteOffset(), (int) op.length()));
        }
    }

    /** Scattered ranges with lengths around the chunk size (one byte, a chunk minus/plus one, several chunks). */
    private static List<ReadOp> ops(Random rnd, long remoteSize, long localSize) {
        int[] lengths = {1, 4095, 4096, 4097, 8192, 12_289, 40_000, 65_536};
        List<ReadOp> ops = new ArrayList<>();
        long l = 0;
        for (int i = 0; i < 24; i++) {
            int len = lengths[rnd.nextInt(lengths.length)];
            if (l + len > localSize) {
                break;
            }
            long r = rnd.nextInt((int) (remoteSize - len));
            ops.add(new ReadOp(r, l, len));
            l += len + rnd.nextInt(3) * 16;
        }
        Collections.shuffle(ops, rnd);
        return ops;
    }

    @Test
    void deviceToDeviceIsByteExact() throws Exception {
        DeviceRegion prefillPool = deviceRegion(1 << 20, 5);
        DeviceRegion decodePool = deviceRegion(1 << 20, 0);
        TcpTransport prefill = transport(prefillPool, staged(TransportOptions.defaults().withMaxTransferBytes(20_000)));
        TcpTransport decode = transport(decodePool, staged(TransportOptions.defaults().withStreams(2)));
        Random rnd = new Random(11);
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            for (int round = 0; round < 12; round++) {
                List<ReadOp> ops = ops(rnd, prefillPool.size(), decodePool.size());
                assertThat(c.read(ops).await(T).bytes()).isEqualTo(ops.stream().mapToLong(ReadOp::length).sum());
                assertSameBytes(prefillPool, decodePool, ops);
            }
        }
    }

    @Test
    void hostToDeviceAndDeviceToHostAreByteExact() throws Exception {
        MemoryRegion hostPool = TestRegions.random(6, 1 << 19, 1 << 19);
        DeviceRegion devicePool = deviceRegion(1 << 20, 8);
        MemoryRegion hostSink = TestRegions.zeros(1 << 20);
        DeviceRegion deviceSink = deviceRegion(1 << 20, 0);
        TcpTransport fromHost = transport(hostPool, staged(TransportOptions.defaults()));
        TcpTransport fromDevice = transport(devicePool, staged(TransportOptions.defaults()));
        TcpTransport intoDevice = transport(deviceSink, staged(TransportOptions.defaults()));
        TcpTransport intoHost = transport(hostSink, staged(TransportOptions.defaults()));
        Random rnd = new Random(12);
        try (Connection a = intoDevice.connect(fromHost.localEndpoint(), T);
             Connection b = intoHost.connect(fromDevice.localEndpoint(), T)) {
            for (int round = 0; round < 6; round++) {
                List<ReadOp> fromHostOps = ops(rnd, 1 << 19, deviceSink.size()); // inside the first host chunk
                a.read(fromHostOps).await(T);
                assertSameBytes(hostPool, deviceSink, fromHostOps);
                List<ReadOp> fromDeviceOps = ops(rnd, devicePool.size(), hostSink.size());
                b.read(fromDeviceOps).await(T);
                assertSameBytes(devicePool, hostSink, fromDeviceOps);
            }
        }
    }

    @Test
    void aPeerDyingMidTransferFailsTheBatchOnlyAfterItsCopiesSettled() throws Exception {
        MemoryRegion slowPool = TestRegions.slow(TestRegions.random(9, 1 << 20), 40);
        DeviceRegion decodePool = deviceRegion(1 << 20, 0);
        TcpTransport prefill = transport(slowPool, staged(TransportOptions.defaults().withMaxTransferBytes(8192)));
        TcpTransport decode = transport(decodePool, staged(TransportOptions.defaults()));
        Connection c = decode.connect(prefill.localEndpoint(), T);
        List<ReadOp> ops = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            ops.add(new ReadOp(i * 16384L, i * 8192L, 8192)); // not contiguous remotely: 64 transfers
        }
        TransferFuture f = c.read(ops);
        Thread.sleep(150); // a few transfers have landed, more are on the wire
        prefill.dropServedSessions();
        assertThatThrownBy(() -> f.await(T)).isInstanceOf(TransferException.class)
                .hasMessageContaining("outstanding");
        assertThat(f.isDone()).isTrue();
        c.close();
    }

    @Test
    void badStagingSettingsAreRefusedAtRegistration() {
        TcpTransport t = new TcpTransport(new TransportOptions("127.0.0.1", 0, null, 1, 1 << 20, 0,
                Duration.ofSeconds(1), Map.of(StagingOptions.CHUNK_KEY, "12")));
        open.add(t);
        assertThatThrownBy(() -> t.register(deviceRegion(4096, 0)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(StagingOptions.CHUNK_KEY);
        TcpTransport u = new TcpTransport(TransportOptions.defaults());
        open.add(u);
        MemoryRegion opaque = new MemoryRegion() {
            @Override
            public io.distserve.kv.transfer.RegionLayout layout() {
                return io.distserve.kv.transfer.RegionLayout.single(16);
            }

            @Override
            public boolean isHostAccessible() {
                return false;
            }

            @Override
            public ByteBuffer slice(long offset, int length) {
                throw new UnsupportedOperationException();
            }
        };
        assertThatThrownBy(() -> u.register(opaque)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("neither");
        assertThat(new StagingOptions(4096, 2).chunksOf(8193)).isEqualTo(3);
        assertThat(new StagingOptions(4096, 2).chunkLength(8193, 2)).isEqualTo(1);
        assertThat(ByteBufferRegion.allocateDirect(1, 16).isHostAccessible()).isTrue();
    }
}
