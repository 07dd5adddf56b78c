package io.distserve.kv.bench;

import io.distserve.kv.cuda.JCudaGpuDevice;
import io.distserve.kv.device.AllocatedMemory;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.PinnedBuffer;
import io.distserve.kv.nvlink.NvlinkTransport;
import io.distserve.kv.tcp.TcpTransport;
import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransportOptions;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * KV migration out of GPU memory on one GPU, two processes (issue 13's benchmark): a "prefill" child process holds a
 * KV pool in device memory (and one in host memory) and serves it over nvlink (CUDA IPC) and tcp; this "decode"
 * process pulls the blocks of one sequence (qwen3-8b layout: 147,456 bytes per token, blocks of 64 tokens = 9 MiB,
 * scattered block ids on both sides) for prompts of 2k, 8k and 32k tokens. Beside them, in the same run: a bulk
 * cuMemcpyDtoD of the same bytes (the nvlink ceiling) and our tcp transport host-to-host across the same two
 * processes (the tcp ceiling). Every path's bytes are verified against the source pattern once before timing.
 *
 * <p>Run on a GPU machine: {@code java -cp CLASSPATH io.distserve.kv.bench.KvGpuBenchmark [runs] [warmup]}
 * (scripts/device/distserve_gpu.sh does). Needs ~12 GiB of device memory and ~12 GiB of direct host memory.
 */
public final class KvGpuBenchmark {

    static final long TOKEN_BYTES = 36L * 8 * 128 * 2 * 2; // qwen3-8b: 147,456
    static final int BLOCK_TOKENS = 64;
    static final long BLOCK_BYTES = TOKEN_BYTES * BLOCK_TOKENS; // 9 MiB
    static final int[] PROMPTS = {2048, 8192, 32768};
    static final int POOL_BLOCKS = 576; // the 32k prompt takes 512
    static final int PATTERN_BYTES = (8 << 20) + 48; // not a divisor of the block size: every block differs
    static final long HOST_CHUNK = (long) (Integer.MAX_VALUE / BLOCK_BYTES) * BLOCK_BYTES; // blocks never straddle
    private static final Duration T = Duration.ofSeconds(120);

    private KvGpuBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("serve")) {
            serve();
            return;
        }
        int runs = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        pull(runs, warmup);
    }

    /** The child: pools filled with the pattern, served over nvlink and tcp until stdin closes. */
    private static void serve() throws Exception {
        JCudaGpuDevice device = JCudaGpuDevice.open(0);
        AllocatedMemory pool = device.allocate(POOL_BLOCKS * BLOCK_BYTES);
        byte[] pattern = pattern();
        fillDevice(device, pool, pattern);
        ByteBufferRegion hostPool = hostPool();
        fillHost(hostPool, pattern);
        DeviceRegion region = new DeviceRegion(device, pool);
        List<KvTransport> served = new ArrayList<>();
        NvlinkTransport nv = new NvlinkTransport(TransportOptions.defaults());
        TcpTransport tcpDevice = new TcpTransport(TransportOptions.defaults());
        TcpTransport tcpHost = new TcpTransport(TransportOptions.defaults());
        nv.register(region);
        tcpDevice.register(region);
        tcpHost.register(hostPool);
        for (KvTransport t : List.of(nv, tcpDevice, tcpHost)) {
            t.start();
            served.add(t);
        }
        System.out.println("ENDPOINT nvlink " + EndpointLine.write(nv.localEndpoint()));
        System.out.println("ENDPOINT tcp-device " + EndpointLine.write(tcpDevice.localEndpoint()));
        System.out.println("ENDPOINT tcp-host " + EndpointLine.write(tcpHost.localEndpoint()));
        System.out.println("READY");
        System.out.flush();
        while (System.in.read() >= 0) {
            // until the parent closes our stdin
        }
        for (KvTransport t : served) {
            t.close();
        }
        pool.close();
        device.close();
    }

    private static void pull(int runs, int warmup) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        Process child = new ProcessBuilder(java, "-Xmx2g", "-XX:MaxDirectMemorySize=8g", "-cp",
                System.getProperty("java.class.path"), KvGpuBenchmark.class.getName(), "serve")
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        Map<String, EndpointInfo> endpoints = new LinkedHashMap<>();
        BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        for (String line; (line = out.readLine()) != null && !line.equals("READY"); ) {
            if (line.startsWith("ENDPOINT ")) {
                String[] p = line.split(" ", 3);
                endpoints.put(p[1], EndpointLine.read(p[2]));
            }
        }
        if (endpoints.size() != 3) {
            throw new IllegalStateException("the serving child did not come up: " + endpoints.keySet());
        }
        JCudaGpuDevice device = JCudaGpuDevice.open(0);
        AllocatedMemory local = device.allocate(POOL_BLOCKS * BLOCK_BYTES);
        AllocatedMemory bulkSrc = device.allocate(PROMPTS[PROMPTS.length - 1] / BLOCK_TOKENS * BLOCK_BYTES);
        fillDevice(device, bulkSrc, pattern());
        DeviceRegion localRegion = new DeviceRegion(device, local);
        ByteBufferRegion localHost = hostPool();
        byte[] pattern = pattern();
        NvlinkTransport nv = new NvlinkTransport(TransportOptions.defaults());
        nv.register(localRegion);
        nv.start();
        TcpTransport tcpDevice = new TcpTransport(TransportOptions.defaults());
        tcpDevice.register(localRegion);
        tcpDevice.start();
        TcpTransport tcpHost = new TcpTransport(TransportOptions.defaults());
        tcpHost.register(localHost);
        tcpHost.start();
        String diagnosis = ipcDiagnosis(device, endpoints.get("nvlink"), local, runs, warmup);
        Connection nvc = nv.connect(endpoints.get("nvlink"), T);
        Connection tdc = tcpDevice.connect(endpoints.get("tcp-device"), T);
        Connection thc = tcpHost.connect(endpoints.get("tcp-host"), T);
        device.bind();
        GpuStream stream = device.newStream();

        System.out.printf(Locale.ROOT, "GPU %s; %d runs after %d warm-up; blocks of %d tokens = %d bytes, scattered%n",
                device.pciBusId(), runs, warmup, BLOCK_TOKENS, BLOCK_BYTES);
        StringBuilder table = new StringBuilder();
        table.append("| prompt tokens | MiB | bulk cuMemcpyDtoD GB/s | nvlink ms | nvlink GB/s | % of bulk "
                + "| host tcp ms | host tcp GB/s | tcp from device ms | tcp from device GB/s | % of host tcp |\n");
        table.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        Random rnd = new Random(2026);
        StringBuilder launches = new StringBuilder("nvlink: ");
        for (int prompt : PROMPTS) {
            int blocks = prompt / BLOCK_TOKENS;
            List<ReadOp> deviceOps = scattered(rnd, blocks, i -> i * BLOCK_BYTES, i -> i * BLOCK_BYTES);
            List<ReadOp> hostOps = scattered(rnd, blocks, i -> hostOffset(i), i -> hostOffset(i));
            long bytes = blocks * BLOCK_BYTES;
            // correctness first: every path lands the source's exact bytes
            clearDevice(device, stream, local);
            nvc.read(deviceOps).await(T);
            verifyDevice(device, stream, local, deviceOps, pattern, prompt, "nvlink");
            clearDevice(device, stream, local);
            tdc.read(deviceOps).await(T);
            verifyDevice(device, stream, local, deviceOps, pattern, prompt, "tcp from device");
            thc.read(hostOps).await(T);
            verifyHost(localHost, hostOps, pattern, prompt);

            // JIT: a serving engine plans thousands of migrations; so many that planning and the launch path are
            // compiled code before anything is timed (at first they run interpreted: ~1 ms for 512 blocks)
            for (int w = 0; w < 300; w++) {
                nvc.read(deviceOps).await(T);
            }
            long[] bulk = new long[runs];
            long[] launch = new long[runs];
            long[] gather = new long[runs];
            long[] host = new long[runs];
            long[] fromDevice = new long[runs];
            for (int r = -warmup; r < runs; r++) {
                long t0 = System.nanoTime();
                stream.copy(bulkSrc, 0, local, 0, bytes);
                try (GpuEvent e = stream.record()) {
                    e.await();
                }
                long t1 = System.nanoTime();
                io.distserve.kv.transfer.TransferFuture f = nvc.read(deviceOps);
                long launched = System.nanoTime();
                f.await(T);
                long t2 = System.nanoTime();
                thc.read(hostOps).await(T);
                long t3 = System.nanoTime();
                tdc.read(deviceOps).await(T);
                long t4 = System.nanoTime();
                if (r >= 0) {
                    launch[r] = launched - t1;
                    bulk[r] = t1 - t0;
                    gather[r] = t2 - t1;
                    host[r] = t3 - t2;
                    fromDevice[r] = t4 - t3;
                }
            }
            double gb = bytes / 1e9;
            double bulkGbs = gb / (median(bulk) / 1e9);
            double nvGbs = gb / (median(gather) / 1e9);
            double hostGbs = gb / (median(host) / 1e9);
            double devGbs = gb / (median(fromDevice) / 1e9);
            table.append(String.format(Locale.ROOT, "| %,d | %,d | %.0f | %.3f | %.0f | %.0f%% | %.1f | %.2f | %.1f | "
                            + "%.2f | %.0f%% |%n", prompt, bytes >> 20, bulkGbs, median(gather) / 1e6, nvGbs,
                    100 * nvGbs / bulkGbs, median(host) / 1e6, hostGbs, median(fromDevice) / 1e6, devGbs,
                    100 * devGbs / hostGbs));
            launches.append(String.format(Locale.ROOT, "%,d tokens: read() returns after %.3f ms; ", prompt,
                    median(launch) / 1e6));
        }
        System.out.println();
        System.out.print(table);
        System.out.println("\nWhere the nvlink time goes (the peer's pool mapped by hand, before the transport maps it; "
                + "host-timed launch + synchronize, medians):");
        System.out.print(diagnosis);
        System.out.println(launches);
        System.out.println("\nGB/s = 10^9 bytes/s of KV moved (bytes read once, written once); medians. nvlink: from "
                + "read() to await() returning (plan, one gather launch, completion); bulk: one contiguous copy of "
                + "the same bytes on the same GPU.");
        stream.close();
        nvc.close();
        tdc.close();
        thc.close();
        nv.close();
        tcpDevice.close();
        tcpHost.close();
        child.getOutputStream().close();
        child.waitFor();
        local.close();
        bulkSrc.close();
        device.close();
    }

    /**
     * The same copies without the transport: a bulk copy and the gather kernel straight from the peer's IPC-mapped
     * pool (as GatherSweep does on local memory), so the table can tell the kernel from the path around it.
     */
    private static String ipcDiagnosis(JCudaGpuDevice device, EndpointInfo nvlink, AllocatedMemory local, int runs,
                                       int warmup) {
        io.distserve.kv.nvlink.NvlinkEndpoint ep = io.distserve.kv.nvlink.NvlinkEndpoint.parse(nvlink);
        device.bind();
        StringBuilder out = new StringBuilder("| prompt tokens | bulk from peer GB/s | gather from peer GB/s |\n"
                + "|---:|---:|---:|\n");
        try (io.distserve.kv.device.ImportedMemory peer = device.openIpc(ep.handle());
             GpuStream s = device.newStream()) {
            Random rnd = new Random(7);
            for (int prompt : PROMPTS) {
                int blocks = prompt / BLOCK_TOKENS;
                long bytes = blocks * BLOCK_BYTES;
                io.distserve.kv.device.CopyRuns cr = io.distserve.kv.device.CopyRuns.of(
                        scattered(rnd, blocks, i -> i * BLOCK_BYTES, i -> i * BLOCK_BYTES));
                double bulk = hostTimed(s, () -> s.copy(peer, 0, local, 0, bytes), runs, warmup);
                double gather = hostTimed(s, () -> s.gather(peer, local, cr), runs, warmup);
                out.append(String.format(Locale.ROOT, "| %,d | %.0f | %.0f |%n", prompt, bytes / 1e9 / bulk,
                        bytes / 1e9 / gather));
            }
        }
        return out.toString();
    }

    private static double hostTimed(GpuStream s, Runnable launch, int runs, int warmup) {
        long[] t = new long[runs];
        for (int r = -warmup; r < runs; r++) {
            long t0 = System.nanoTime();
            launch.run();
            s.synchronize();
            if (r >= 0) {
                t[r] = System.nanoTime() - t0;
            }
        }
        return median(t) / 1e9;
    }

    private interface Offset {
        long of(int block);
    }

    private static List<ReadOp> scattered(Random rnd, int blocks, Offset remote, Offset localOff) {
        List<Integer> src = new ArrayList<>();
        List<Integer> dst = new ArrayList<>();
        for (int i = 0; i < POOL_BLOCKS; i++) {
            src.add(i);
            dst.add(i);
        }
        Collections.shuffle(src, rnd);
        Collections.shuffle(dst, rnd);
        List<ReadOp> ops = new ArrayList<>();
        for (int i = 0; i < blocks; i++) {
            ops.add(new ReadOp(remote.of(src.get(i)), localOff.of(dst.get(i)), BLOCK_BYTES));
        }
        return ops;
    }

    static long hostOffset(int block) {
        long perChunk = HOST_CHUNK / BLOCK_BYTES;
        return (block / perChunk) * HOST_CHUNK + (block % perChunk) * BLOCK_BYTES;
    }

    static ByteBufferRegion hostPool() {
        List<ByteBuffer> chunks = new ArrayList<>();
        long left = POOL_BLOCKS * BLOCK_BYTES;
        while (left > 0) {
            long n = Math.min(left, HOST_CHUNK);
            chunks.add(ByteBuffer.allocateDirect((int) n));
            left -= n;
        }
        return new ByteBufferRegion(chunks);
    }

    static byte[] pattern() {
        byte[] p = new byte[PATTERN_BYTES];
        new Random(13).nextBytes(p);
        return p;
    }

    /** Byte {@code i} of the pools (device: absolute offset; host: offset of the block's content). */
    static byte expected(byte[] pattern, long offset) {
        return pattern[(int) (offset % pattern.length)];
    }

    private static void fillDevice(JCudaGpuDevice device, AllocatedMemory pool, byte[] pattern) {
        device.bind();
        try (GpuStream s = device.newStream(); PinnedBuffer buf = device.allocatePinned(pattern.length)) {
            buf.buffer().put(pattern);
            for (long off = 0; off < pool.size(); off += pattern.length) { // off is a multiple of the period
                s.copyToDevice(buf, 0, pool, off, (int) Math.min(pattern.length, pool.size() - off));
            }
            s.synchronize();
        }
    }

    /** Host pool: the block's bytes equal the device pool's block of the same id. */
    private static void fillHost(ByteBufferRegion pool, byte[] pattern) {
        for (int blk = 0; blk < POOL_BLOCKS; blk++) {
            ByteBuffer b = pool.slice(hostOffset(blk), (int) BLOCK_BYTES);
            long base = blk * BLOCK_BYTES;
            for (int i = 0; i < BLOCK_BYTES; i++) {
                b.put(expected(pattern, base + i));
            }
        }
    }

    private static void clearDevice(JCudaGpuDevice device, GpuStream s, AllocatedMemory mem) {
        try (PinnedBuffer zeros = device.allocatePinned(8 << 20)) {
            for (long off = 0; off < mem.size(); off += zeros.capacity()) {
                s.copyToDevice(zeros, 0, mem, off, (int) Math.min(zeros.capacity(), mem.size() - off));
            }
            s.synchronize();
        }
    }

    private static void verifyDevice(JCudaGpuDevice device, GpuStream s, AllocatedMemory local, List<ReadOp> ops,
                                     byte[] pattern, int prompt, String path) {
        try (PinnedBuffer buf = device.allocatePinned((int) BLOCK_BYTES)) {
            for (int k = 0; k < ops.size(); k += ops.size() > 128 ? 8 : 1) {
                ReadOp op = ops.get(k);
                s.copyToHost(local, op.localOffset(), buf, 0, (int) BLOCK_BYTES);
                s.synchronize();
                check(buf.buffer(), op.remoteOffset(), pattern, prompt, path, k);
            }
        }
    }

    private static void verifyHost(ByteBufferRegion local, List<ReadOp> ops, byte[] pattern, int prompt) {
        for (int k = 0; k < ops.size(); k += ops.size() > 128 ? 8 : 1) {
            ReadOp op = ops.get(k);
            long remoteBlock = (op.remoteOffset() / HOST_CHUNK) * (HOST_CHUNK / BLOCK_BYTES)
                    + (op.remoteOffset() % HOST_CHUNK) / BLOCK_BYTES;
            check(local.slice(op.localOffset(), (int) BLOCK_BYTES), remoteBlock * BLOCK_BYTES, pattern, prompt,
                    "host tcp", k);
        }
    }

    private static void check(ByteBuffer got, long srcOffset, byte[] pattern, int prompt, String path, int op) {
        for (int i = 0; i < BLOCK_BYTES; i++) {
            if (got.get(i) != expected(pattern, srcOffset + i)) {
                throw new IllegalStateException(path + ", " + prompt + " tokens: block " + op + " differs at byte "
                        + i + " (got " + got.get(i) + ", want " + expected(pattern, srcOffset + i) + ")");
            }
        }
    }

    private static double median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2.0;
    }

    /** An endpoint on one line between the two processes: {@code transport|host|port|s1;s2|token|k=v,k=v}. */
    static final class EndpointLine {
        static String write(EndpointInfo e) {
            StringBuilder a = new StringBuilder();
            e.attributes().forEach((k, v) -> a.append(a.length() == 0 ? "" : ",").append(k).append('=').append(v));
            StringBuilder seg = new StringBuilder();
            e.segmentSizes().forEach(x -> seg.append(seg.length() == 0 ? "" : ";").append(x));
            return e.transport() + "|" + e.host() + "|" + e.port() + "|" + seg + "|" + e.token() + "|" + a;
        }

        static EndpointInfo read(String line) {
            String[] p = line.split("\\|", -1);
            Map<String, String> attrs = new LinkedHashMap<>();
            if (!p[5].isEmpty()) {
                for (String kv : p[5].split(",")) {
                    int eq = kv.indexOf('=');
                    attrs.put(kv.substring(0, eq), kv.substring(eq + 1));
                }
            }
            List<Long> segments = new ArrayList<>();
            for (String x : p[3].split(";")) {
                segments.add(Long.parseLong(x));
            }
            long size = segments.stream().mapToLong(Long::longValue).sum();
            return new EndpointInfo(p[0], p[1], Integer.parseInt(p[2]), size, segments, p[4], attrs);
        }
    }
}
