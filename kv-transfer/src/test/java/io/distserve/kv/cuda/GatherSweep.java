package io.distserve.kv.cuda;

import io.distserve.kv.device.AllocatedMemory;
import io.distserve.kv.device.CopyRuns;
import io.distserve.kv.device.PinnedBuffer;
import io.distserve.kv.transfer.ReadOp;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * One process, one GPU: the gather kernel's configurations (cache policy, piece size, blocks per SM) on the KV
 * migration of 2k and 32k qwen3-8b tokens (9 MiB blocks, scattered), against a bulk cuMemcpyDtoD of the same bytes
 * and one cuMemcpyDtoDAsync per block. Host-timed launch + synchronize, median of 10 after 2 warm-up. The numbers
 * pick the production configuration (kv-transfer/BENCHMARKS.md). Run: {@code java -cp ... GatherSweep}.
 */
public final class GatherSweep {

    private static final long BLOCK = 36L * 8 * 128 * 2 * 2 * 64;
    private static final int POOL_BLOCKS = 576;

    private GatherSweep() {
    }

    public static void main(String[] args) {
        JCudaGpuDevice device = JCudaGpuDevice.open(0);
        AllocatedMemory src = device.allocate(POOL_BLOCKS * BLOCK);
        AllocatedMemory dst = device.allocate(POOL_BLOCKS * BLOCK);
        JCudaStream s = (JCudaStream) device.newStream();
        try (PinnedBuffer fill = device.allocatePinned(8 << 20)) {
            byte[] b = new byte[8 << 20];
            new Random(5).nextBytes(b);
            fill.buffer().put(b);
            for (long off = 0; off < src.size(); off += fill.capacity()) {
                s.copyToDevice(fill, 0, src, off, (int) Math.min(fill.capacity(), src.size() - off));
            }
            s.synchronize();
        }
        Random rnd = new Random(2026);
        StringBuilder out = new StringBuilder("| configuration | 2,048 tokens GB/s | 32,768 tokens GB/s |\n|---|---:|---:|\n");
        List<String> names = new ArrayList<>();
        List<double[]> rates = new ArrayList<>();
        int[] prompts = {2048, 32768};
        for (int pi = 0; pi < prompts.length; pi++) {
            int blocks = prompts[pi] / 64;
            List<Integer> a = new ArrayList<>();
            List<Integer> c = new ArrayList<>();
            for (int i = 0; i < POOL_BLOCKS; i++) {
                a.add(i);
                c.add(i);
            }
            Collections.shuffle(a, rnd);
            Collections.shuffle(c, rnd);
            List<ReadOp> ops = new ArrayList<>();
            for (int i = 0; i < blocks; i++) {
                ops.add(new ReadOp(a.get(i) * BLOCK, c.get(i) * BLOCK, BLOCK));
            }
            long bytes = blocks * BLOCK;
            int row = 0;
            record(names, rates, row++, pi, "bulk cuMemcpyDtoDAsync, one contiguous copy", bytes,
                    time(s, () -> s.copy(src, 0, dst, 0, bytes)));
            record(names, rates, row++, pi, "one cuMemcpyDtoDAsync per block", bytes, time(s, () -> {
                for (ReadOp op : ops) {
                    s.copy(src, op.remoteOffset(), dst, op.localOffset(), op.length());
                }
            }));
            for (String kernel : new String[] {"kv_gather", "kv_gather_streaming"}) {
                for (long piece : new long[] {32L << 10, 64L << 10, 256L << 10, 1L << 20}) {
                    CopyRuns runs = CopyRuns.of(ops, 0, piece);
                    for (int bps : new int[] {1, 2, 4, 8}) {
                        record(names, rates, row++, pi, String.format(Locale.ROOT, "%s, pieces of %d KiB, %d blocks/SM",
                                kernel, piece >> 10, bps), bytes, time(s, () -> s.gather(src, dst, runs, kernel, bps)));
                    }
                }
            }
        }
        for (int i = 0; i < names.size(); i++) {
            out.append(String.format(Locale.ROOT, "| %s | %.0f | %.0f |%n", names.get(i), rates.get(i)[0],
                    rates.get(i)[1]));
        }
        System.out.println("GPU " + device.pciBusId() + ", " + device.smCount() + " SMs; host-timed launch + "
                + "synchronize, median of 10; GB/s of KV moved");
        System.out.print(out);
        s.close();
        src.close();
        dst.close();
        device.close();
    }

    private static void record(List<String> names, List<double[]> rates, int row, int prompt, String name, long bytes,
                               double seconds) {
        if (names.size() <= row) {
            names.add(name);
            rates.add(new double[2]);
        }
        rates.get(row)[prompt] = bytes / 1e9 / seconds;
    }

    private static double time(JCudaStream s, Runnable launch) {
        double[] t = new double[10];
        for (int r = -2; r < t.length; r++) {
            long t0 = System.nanoTime();
            launch.run();
            s.synchronize();
            if (r >= 0) {
                t[r] = (System.nanoTime() - t0) / 1e9;
            }
        }
        Arrays.sort(t);
        return (t[4] + t[5]) / 2;
    }
}
