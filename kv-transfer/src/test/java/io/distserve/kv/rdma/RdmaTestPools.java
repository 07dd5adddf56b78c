package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.HostGpuDevice;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransportOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Pools, reads and checks shared by the rdma tests. */
final class RdmaTestPools {

    private RdmaTestPools() {
    }

    static TransportOptions options(int queuePairs, Map<String, String> extra) {
        return new TransportOptions("127.0.0.1", 0, null, queuePairs, 8L << 20, 0, Duration.ofSeconds(2),
                extra);
    }

    static byte[] bytes(MemoryRegion r, long offset, int length) {
        byte[] out = new byte[length];
        if (r instanceof DeviceRegion d) {
            ((HostGpuDevice.HostMemory) d.memory()).bytes().position((int) offset).get(out);
        } else { // piece by piece: a range may span the region's chunks
            for (int done = 0; done < length; ) {
                long at = offset + done;
                int n = (int) Math.min(length - done, r.layout().segmentEnd(at) - at);
                r.slice(at, n).get(out, done, n);
                done += n;
            }
        }
        return out;
    }

    static void assertSameBytes(MemoryRegion remote, MemoryRegion local, List<ReadOp> ops) {
        for (ReadOp op : ops) {
            org.assertj.core.api.Assertions.assertThat(bytes(local, op.localOffset(), (int) op.length()))
                    .as("bytes of %s", op).isEqualTo(bytes(remote, op.remoteOffset(), (int) op.length()));
        }
    }

    /** Scattered ranges of lengths around a 4 KiB slot (a byte, a slot minus/plus one, several slots). */
    static List<ReadOp> scattered(Random rnd, long remoteSize, long localSize) {
        int[] lengths = {1, 4095, 4096, 4097, 8192, 12_289, 40_000};
        List<ReadOp> ops = new ArrayList<>();
        long l = 0;
        for (int i = 0; i < 16; i++) {
            int len = lengths[rnd.nextInt(lengths.length)];
            if (l + len > localSize) {
                break;
            }
            ops.add(new ReadOp(rnd.nextInt((int) (remoteSize - len)), l, len));
            l += len + rnd.nextInt(3) * 16L;
        }
        Collections.shuffle(ops, rnd);
        return ops;
    }

    /** Live threads of the rdma transport (all named kv-rdma-...). */
    static List<String> liveThreads() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive).map(Thread::getName)
                .filter(n -> n.startsWith("kv-rdma-")).sorted().toList();
    }
}
