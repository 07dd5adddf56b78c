package io.distserve.kv.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferResult;
import io.distserve.kv.transfer.TransportOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Byte-exact transfers over loopback. */
class TcpTransportTest {

    private static final Duration T = Duration.ofSeconds(10);
    private final List<AutoCloseable> open = new ArrayList<>();

    private TcpTransport transport(MemoryRegion region, TransportOptions options) throws Exception {
        TcpTransport t = new TcpTransport(options);
        open.add(t);
        t.register(region);
        t.start();
        return t;
    }

    @AfterEach
    void closeAllAndCheckForLeaks() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
        assertThat(ThreadLeaks.live()).as("kv-tcp threads left after close").isEmpty();
    }

    private static void assertSameBytes(MemoryRegion remote, MemoryRegion local, List<ReadOp> ops) {
        for (ReadOp op : ops) {
            assertThat(TestRegions.bytes(local, op.localOffset(), (int) op.length()))
                    .as("bytes of %s", op)
                    .isEqualTo(TestRegions.bytes(remote, op.remoteOffset(), (int) op.length()));
        }
    }

    @Test
    void randomOpsAcrossSeveralChunksAreByteExact() throws Exception {
        // Odd chunk sizes so that ranges end exactly on, and next to, chunk ends.
        MemoryRegion prefillPool = TestRegions.random(1, 1 << 20, (1 << 19) + 4096, 3 << 19);
        MemoryRegion decodePool = TestRegions.zeros(3 << 19, 3 << 19);
        TcpTransport prefill = transport(prefillPool, TransportOptions.defaults().withMaxTransferBytes(64 << 10));
        TcpTransport decode = transport(decodePool, TransportOptions.defaults().withStreams(3));
        Random rnd = new Random(7);
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            for (int round = 0; round < 20; round++) {
                List<ReadOp> ops = randomOps(rnd, prefillPool, decodePool);
                TransferResult r = c.read(ops).await(T);
                assertThat(r.bytes()).isEqualTo(ops.stream().mapToLong(ReadOp::length).sum());
                assertSameBytes(prefillPool, decodePool, ops);
            }
        }
    }

    /** Non-overlapping local ranges, each inside one chunk on both sides (as KV blocks are). */
    private static List<ReadOp> randomOps(Random rnd, MemoryRegion remote, MemoryRegion local) {
        List<ReadOp> ops = new ArrayList<>();
        long l = rnd.nextInt(4096);
        while (ops.size() < 40) {
            int len = 1 + rnd.nextInt(rnd.nextBoolean() ? 512 : 200_000);
            if (l + len > local.size()) {
                break;
            }
            if (l + len > local.layout().segmentEnd(l)) {
                l = local.layout().segmentEnd(l); // start the next range at the chunk start
                continue;
            }
            long r;
            if (!ops.isEmpty() && rnd.nextInt(3) == 0) {
                r = ops.get(ops.size() - 1).remoteEnd(); // coalescible if local is contiguous too
            } else {
                r = rnd.nextInt((int) remote.size());
            }
            if (r + len > remote.size() || r + len > remote.layout().segmentEnd(r)) {
                r = remote.layout().segmentEnd(Math.min(r, remote.size() - 1)) - len; // touch the chunk end
                if (r < 0 || r < remote.layout().segmentStart(remote.layout().segmentOf(Math.max(0, r)))) {
                    continue;
                }
            }
            ops.add(new ReadOp(r, l, len));
            l += len + (rnd.nextBoolean() ? 0 : rnd.nextInt(5000));
        }
        Collections.shuffle(ops, rnd);
        return ops;
    }

    @Test
    void coalescingEdgeCasesOnTheWire() throws Exception {
        int chunk = 64 << 10;
        MemoryRegion prefillPool = TestRegions.random(2, chunk, chunk, chunk);
        MemoryRegion decodePool = TestRegions.zeros(chunk, chunk);
        TcpTransport prefill = transport(prefillPool, TransportOptions.defaults());
        TcpTransport decode = transport(decodePool, TransportOptions.defaults());
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            List<ReadOp> ops = List.of(
                    new ReadOp(chunk - 4096, 0, 4096),          // touches remote chunk 0's end
                    new ReadOp(chunk, 4096, 4096),               // adjacent on both sides: coalesced, then split
                    new ReadOp(2 * chunk, 8192, 100),            // adjacent locally only
                    new ReadOp(2 * chunk + 100, 20_000, 100),    // adjacent remotely only
                    new ReadOp(3L * chunk - 1, chunk - 1, 1),    // last byte of both regions' chunk ends
                    new ReadOp(0, chunk, chunk));                // a whole chunk into the next local chunk
            TransferResult r = c.read(ops).await(T);
            assertThat(r.transfers()).isEqualTo(6);
            assertSameBytes(prefillPool, decodePool, ops);
            TransferFuture empty = c.read(List.of());
            assertThat(empty.isDone()).isTrue();
            assertThat(empty.await(T).bytes()).isZero();
            assertThatThrownBy(() -> c.read(List.of(new ReadOp(0, 0, 0))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("length 0");
            assertThatThrownBy(() -> c.read(List.of(new ReadOp(0, 0, 16), new ReadOp(64, 8, 16))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlap");
        }
    }

    @Test
    void concurrentBatchesFromSeveralThreadsShareOneConnection() throws Exception {
        int chunk = 4 << 20;
        MemoryRegion prefillPool = TestRegions.random(3, chunk, chunk);
        MemoryRegion decodePool = TestRegions.zeros(chunk, chunk);
        TcpTransport prefill = transport(prefillPool, TransportOptions.defaults());
        TcpTransport decode = transport(decodePool, TransportOptions.defaults().withMaxTransferBytes(256 << 10));
        int threads = 4;
        int block = 64 << 10;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            List<Future<List<ReadOp>>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int me = t;
                results.add(pool.submit(() -> {
                    Random rnd = new Random(100 + me);
                    List<ReadOp> all = new ArrayList<>();
                    // Each thread owns every threads-th local block, so the threads never write the same bytes.
                    for (int round = 0; round < 10; round++) {
                        List<ReadOp> ops = new ArrayList<>();
                        for (int k = 0; k < 6; k++) {
                            int localBlock = me + threads * (round * 6 + k) % ((2 * chunk / block) / threads * threads);
                            long remoteBlock = rnd.nextInt(2 * chunk / block);
                            ops.add(new ReadOp(remoteBlock * block, (long) localBlock * block, block));
                        }
                        List<ReadOp> distinct = ops.stream().distinct().toList();
                        if (distinct.stream().map(ReadOp::localOffset).distinct().count() != distinct.size()) {
                            continue;
                        }
                        c.read(distinct).await(T);
                        all.addAll(distinct);
                        assertSameBytes(prefillPool, decodePool, distinct);
                    }
                    return all;
                }));
            }
            for (Future<List<ReadOp>> f : results) {
                assertThat(f.get()).isNotEmpty();
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void largeBatchOf64MiB() throws Exception {
        int chunk = 32 << 20;
        int block = 7 << 20 >> 3; // 896 KiB "blocks", scattered
        MemoryRegion prefillPool = TestRegions.random(4, chunk, chunk, chunk);
        MemoryRegion decodePool = TestRegions.zeros(chunk, chunk);
        TcpTransport prefill = transport(prefillPool, TransportOptions.defaults());
        TcpTransport decode = transport(decodePool, TransportOptions.defaults());
        int perChunkRemote = chunk / block;
        List<ReadOp> ops = new ArrayList<>();
        for (int i = 0; i < (64 << 20) / block; i++) {
            int rb = (i * 7) % (3 * perChunkRemote); // scattered source blocks
            long remote = (long) (rb / perChunkRemote) * chunk + (long) (rb % perChunkRemote) * block;
            long local = (long) (i / perChunkRemote) * chunk + (long) (i % perChunkRemote) * block;
            if (local + block > decodePool.size()) {
                break;
            }
            ops.add(new ReadOp(remote, local, block));
        }
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            TransferResult r = c.read(ops).await(Duration.ofSeconds(30));
            assertThat(r.bytes()).isGreaterThan(60L << 20);
            assertSameBytes(prefillPool, decodePool, ops);
        }
    }

    @Test
    void endpointInfoDescribesTheServedRegion() throws Exception {
        MemoryRegion pool = TestRegions.zeros(4096, 8192);
        TcpTransport t = transport(pool, TransportOptions.defaults());
        EndpointInfo e = t.localEndpoint();
        assertThat(e.transport()).isEqualTo("tcp");
        assertThat(e.host()).isEqualTo("127.0.0.1");
        assertThat(e.port()).isPositive();
        assertThat(e.regionSize()).isEqualTo(12288);
        assertThat(e.segmentSizes()).containsExactly(4096L, 8192L);
        assertThat(e.token()).hasSize(64);
        assertThat(new TcpTransport(TransportOptions.defaults())).isNotNull(); // never started: owns no thread
    }

    @Test
    void lifecycleMisuseIsAnError() throws Exception {
        TcpTransport t = new TcpTransport(TransportOptions.defaults());
        open.add(t);
        assertThatThrownBy(t::start).isInstanceOf(IllegalStateException.class).hasMessageContaining("register");
        assertThatThrownBy(t::localEndpoint).isInstanceOf(IllegalStateException.class);
        t.register(TestRegions.zeros(64));
        assertThatThrownBy(() -> t.register(TestRegions.zeros(64))).isInstanceOf(IllegalStateException.class);
        t.start();
        assertThatThrownBy(t::start).isInstanceOf(IllegalStateException.class);
        t.close();
        t.close();
        assertThatThrownBy(() -> t.connect(t.localEndpoint(), T)).isInstanceOf(IllegalStateException.class);
    }
}
