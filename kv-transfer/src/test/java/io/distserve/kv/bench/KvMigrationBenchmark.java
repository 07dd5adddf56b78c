package io.distserve.kv.bench;

import io.distserve.kv.tcp.TcpTransport;
import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransportOptions;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.SynchronousQueue;

/**
 * Migrates the KV of one 2,048-token Qwen3-0.6B sequence (28 layers x 8 kv heads x 128 head dim x bf16 x K,V = 112 KiB
 * per token; 32 blocks of 64 tokens = 7 MiB each, 224 MiB in all) from a 1 GiB "prefill" pool to a 1 GiB "decode"
 * pool over loopback tcp, at scattered block ids, and compares with a plain socket-to-socket copy of the same bytes
 * (the ceiling). Configurations are measured interleaved, run by run, so that noise from other processes on the
 * machine hits all of them alike.
 *
 * <p>Run: {@code mvn -o -q -pl kv-transfer test-compile exec:exec} (see kv-transfer/BENCHMARKS.md).
 * Arguments: {@code [runs] [warmup] [chunkMiB]}, default 30 5 256.
 */
public final class KvMigrationBenchmark {

    private static final long TOKEN_BYTES = 28L * 8 * 128 * 2 * 2; // 112 KiB
    private static final int BLOCK_TOKENS = 64;
    private static final int BLOCK_BYTES = (int) (TOKEN_BYTES * BLOCK_TOKENS); // 7 MiB
    private static final int SEQ_BLOCKS = 2048 / BLOCK_TOKENS; // 32
    private static final long MIGRATION_BYTES = (long) BLOCK_BYTES * SEQ_BLOCKS; // 224 MiB
    private static final long POOL_BYTES = 1L << 30;
    private static final int SOCKET_BUFFER = 4 << 20;
    private static final Duration T = Duration.ofSeconds(60);

    private KvMigrationBenchmark() {
    }

    /** One way of moving 224 MiB; returns nanoseconds. */
    private interface Case extends AutoCloseable {
        long runOnce() throws Exception;

        @Override
        void close() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        int runs = args.length > 0 ? Integer.parseInt(args[0]) : 30;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        int chunkMiB = args.length > 2 ? Integer.parseInt(args[2]) : 256;
        int chunkBytes = (int) Math.min(Integer.MAX_VALUE, (long) chunkMiB << 20);
        int chunks = (int) (POOL_BYTES / ((long) chunkMiB << 20));
        int blocksPerChunk = chunkBytes / BLOCK_BYTES; // a block never straddles chunks

        System.out.printf(Locale.ROOT, "pool %d MiB in %d chunk(s) of %d MiB, %d blocks of %d KiB each side; "
                        + "migration %d blocks = %d MiB; %d runs after %d warmup%n",
                POOL_BYTES >> 20, chunks, chunkMiB, blocksPerChunk * chunks, BLOCK_BYTES >> 10, SEQ_BLOCKS,
                MIGRATION_BYTES >> 20, runs, warmup);

        ByteBufferRegion prefillPool = ByteBufferRegion.allocateDirect(chunks, chunkBytes);
        ByteBufferRegion decodePool = ByteBufferRegion.allocateDirect(chunks, chunkBytes);
        fill(prefillPool, 42);
        Random rnd = new Random(2026);
        List<ReadOp> ops = migration(rnd, blocksPerChunk, chunks, chunkBytes);

        Map<String, Case> cases = new LinkedHashMap<>();
        // The copies run one at a time, so they share one pair of 224 MiB buffers.
        ByteBuffer copySrc = ByteBuffer.allocateDirect((int) MIGRATION_BYTES);
        ByteBuffer copyDst = ByteBuffer.allocateDirect((int) MIGRATION_BYTES);
        cases.put("socket copy, 224 MiB writes, default buffers (ceiling)",
                socketCopy(0, Integer.MAX_VALUE, copySrc, copyDst));
        cases.put("socket copy, 224 MiB writes, 4 MiB buffers (ceiling)",
                socketCopy(SOCKET_BUFFER, Integer.MAX_VALUE, copySrc, copyDst));
        cases.put("socket copy, 7 MiB writes, default buffers (ceiling)",
                socketCopy(0, BLOCK_BYTES, copySrc, copyDst));
        // The serving side's buffers are left to the OS; each pulling config sets (or not) its own.
        TcpTransport prefill = new TcpTransport(TransportOptions.defaults().withSocketBufferBytes(0));
        prefill.register(prefillPool);
        prefill.start();
        List<TcpTransport> decodes = new ArrayList<>();
        // {streams, max transfer MiB, socket buffer MiB (0 = OS autotuning)}
        int[][] configs = {{1, 8, 0}, {2, 8, 0}, {4, 8, 0}, {2, 1, 0}, {1, 8, 4}, {2, 8, 4}};
        for (int[] cfg : configs) {
            int streams = cfg[0];
            int maxMiB = cfg[1];
            int bufMiB = cfg[2];
            TransportOptions o = TransportOptions.defaults().withStreams(streams)
                    .withMaxTransferBytes((long) maxMiB << 20).withSocketBufferBytes(bufMiB << 20);
            TcpTransport d = new TcpTransport(o);
            d.register(decodePool);
            decodes.add(d);
            Connection c = d.connect(prefill.localEndpoint(), T);
            String name = "tcp transport, " + streams + " stream(s), max transfer " + maxMiB + " MiB, "
                    + (bufMiB == 0 ? "default buffers" : bufMiB + " MiB buffers");
            cases.put(name, new Case() {
                @Override
                public long runOnce() throws Exception {
                    long t0 = System.nanoTime();
                    c.read(ops).await(T);
                    return System.nanoTime() - t0;
                }

                @Override
                public void close() {
                    c.close();
                }
            });
        }

        // Correctness first (not timed): every config must move the exact bytes.
        for (Map.Entry<String, Case> e : cases.entrySet()) {
            if (e.getKey().startsWith("tcp")) {
                clear(decodePool, ops);
                e.getValue().runOnce();
                verify(prefillPool, decodePool, ops, e.getKey());
            }
        }

        Map<String, long[]> times = new LinkedHashMap<>();
        cases.keySet().forEach(k -> times.put(k, new long[runs]));
        for (int r = -warmup; r < runs; r++) {
            for (Map.Entry<String, Case> e : cases.entrySet()) {
                long ns = e.getValue().runOnce();
                if (r >= 0) {
                    times.get(e.getKey())[r] = ns;
                }
            }
        }

        double ceiling = 0;
        for (Map.Entry<String, long[]> e : times.entrySet()) {
            if (e.getKey().contains("ceiling")) {
                ceiling = Math.max(ceiling, gbps(median(e.getValue())));
            }
        }
        System.out.println();
        System.out.println("| what (224 MiB per run) | median ms | p90 ms | GB/s (median) | % of best ceiling |");
        System.out.println("|---|---:|---:|---:|---:|");
        for (Map.Entry<String, long[]> e : times.entrySet()) {
            double med = median(e.getValue()) / 1e6;
            double p90 = percentile(e.getValue(), 0.9) / 1e6;
            double g = gbps(median(e.getValue()));
            System.out.printf(Locale.ROOT, "| %s | %.1f | %.1f | %.2f | %.0f%% |%n", e.getKey(), med, p90, g,
                    100 * g / ceiling);
        }
        System.out.println("\nGB/s = 10^9 bytes per second; 224 MiB = " + MIGRATION_BYTES + " bytes.");

        for (Case c : cases.values()) {
            c.close();
        }
        for (TcpTransport d : decodes) {
            d.close();
        }
        prefill.close();
    }

    /** 32 distinct random block ids on each side: nothing coalesces, like a real fragmented pool. */
    private static List<ReadOp> migration(Random rnd, int blocksPerChunk, int chunks, int chunkBytes) {
        List<Integer> src = new ArrayList<>();
        List<Integer> dst = new ArrayList<>();
        for (int i = 0; i < blocksPerChunk * chunks; i++) {
            src.add(i);
            dst.add(i);
        }
        Collections.shuffle(src, rnd);
        Collections.shuffle(dst, rnd);
        List<ReadOp> ops = new ArrayList<>();
        for (int i = 0; i < SEQ_BLOCKS; i++) {
            ops.add(new ReadOp(blockOffset(src.get(i), blocksPerChunk, chunkBytes),
                    blockOffset(dst.get(i), blocksPerChunk, chunkBytes), BLOCK_BYTES));
        }
        return ops;
    }

    private static long blockOffset(int id, int blocksPerChunk, int chunkBytes) {
        return (long) (id / blocksPerChunk) * chunkBytes + (long) (id % blocksPerChunk) * BLOCK_BYTES;
    }

    /**
     * One writer thread, one reader (the caller), one loopback socket, direct buffers on both ends; the writer writes
     * {@code writeBytes} per write call.
     */
    private static Case socketCopy(int socketBuffer, int writeBytes, ByteBuffer shared, ByteBuffer sharedDst)
            throws IOException {
        ServerSocketChannel server = ServerSocketChannel.open();
        if (socketBuffer > 0) {
            server.setOption(StandardSocketOptions.SO_RCVBUF, socketBuffer);
        }
        server.bind(new InetSocketAddress("127.0.0.1", 0));
        SocketChannel writerEnd = SocketChannel.open();
        if (socketBuffer > 0) {
            writerEnd.setOption(StandardSocketOptions.SO_SNDBUF, socketBuffer);
        }
        writerEnd.connect(server.getLocalAddress());
        SocketChannel readerEnd = server.accept();
        ByteBuffer src = shared.duplicate();
        ByteBuffer dst = sharedDst.duplicate();
        SynchronousQueue<Boolean> go = new SynchronousQueue<>();
        Thread writer = new Thread(() -> {
            try {
                while (go.take()) {
                    src.clear();
                    while (src.hasRemaining()) {
                        // Either one huge write, or block-sized writes like the transport's server does.
                        src.limit((int) Math.min(src.capacity(), (long) src.position() + writeBytes));
                        while (src.hasRemaining()) {
                            writerEnd.write(src);
                        }
                        src.limit(src.capacity());
                    }
                }
            } catch (InterruptedException | IOException e) {
                // benchmark teardown
            }
        }, "bench-socket-writer");
        writer.setDaemon(true); // if main dies, don't keep the JVM alive
        writer.start();
        return new Case() {
            @Override
            public long runOnce() throws Exception {
                dst.clear();
                long t0 = System.nanoTime();
                go.put(true);
                while (dst.hasRemaining()) {
                    readerEnd.read(dst);
                }
                return System.nanoTime() - t0;
            }

            @Override
            public void close() throws Exception {
                go.put(false);
                writer.join();
                writerEnd.close();
                readerEnd.close();
                server.close();
            }
        };
    }

    private static void fill(ByteBufferRegion region, long seed) {
        Random r = new Random(seed);
        byte[] buf = new byte[1 << 20];
        long off = 0;
        while (off < region.size()) {
            r.nextBytes(buf);
            int n = (int) Math.min(buf.length, region.layout().segmentEnd(off) - off);
            region.slice(off, n).put(buf, 0, n);
            off += n;
        }
    }

    private static void clear(MemoryRegion region, List<ReadOp> ops) {
        byte[] zeros = new byte[BLOCK_BYTES];
        for (ReadOp op : ops) {
            region.slice(op.localOffset(), (int) op.length()).put(zeros, 0, (int) op.length());
        }
    }

    private static void verify(MemoryRegion remote, MemoryRegion local, List<ReadOp> ops, String what) {
        for (ReadOp op : ops) {
            if (!remote.slice(op.remoteOffset(), (int) op.length()).equals(local.slice(op.localOffset(),
                    (int) op.length()))) {
                throw new AssertionError(what + ": bytes differ for " + op);
            }
        }
    }

    private static double gbps(double nanos) {
        return MIGRATION_BYTES / nanos; // bytes per ns = GB/s
    }

    private static double median(long[] v) {
        return percentile(v, 0.5);
    }

    private static double percentile(long[] v, double p) {
        long[] s = v.clone();
        Arrays.sort(s);
        int i = (int) Math.ceil(p * s.length) - 1;
        return s[Math.max(0, Math.min(s.length - 1, i))];
    }
}
