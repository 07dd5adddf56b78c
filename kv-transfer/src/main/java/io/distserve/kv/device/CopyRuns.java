package io.distserve.kv.device;

import io.distserve.kv.transfer.ReadOp;
import java.util.List;

/**
 * The copies of one gather launch, in the form the kernel reads them (kv_gather.cu). Each run is cut into pieces of
 * {@link #pieceBytes()} (the last one shorter); each thread block takes an equal contiguous share of the pieces, so
 * that a few large runs and many small ones spread over the GPU alike. Pure arithmetic: built and checked on the host.
 *
 * <p>{@link #encoded()} is {@code 4n + 1} longs: the n source offsets, the n destination offsets, the n lengths,
 * then the n + 1 piece starts (run i owns pieces {@code [start[i], start[i+1])}).
 */
public final class CopyRuns {

    /**
     * Bytes of a piece: 64 KiB is two rounds of the kernel's 256 threads x 8 16-byte loads in flight, and one 9 MiB KV
     * block alone still gives 144 pieces to spread over the GPU. Measured on the H200 (GatherSweep): 32 KiB to
     * 1 MiB pieces are within a few percent of each other on large migrations.
     */
    public static final long DEFAULT_PIECE_BYTES = 64L << 10;

    private final long[] src;
    private final long[] dst;
    private final long[] len;
    private final long[] pieceStart;
    private final long pieceBytes;
    private final long totalBytes;

    private CopyRuns(long[] src, long[] dst, long[] len, long pieceBytes) {
        this.src = src;
        this.dst = dst;
        this.len = len;
        this.pieceBytes = pieceBytes;
        this.pieceStart = new long[len.length + 1];
        long total = 0;
        for (int i = 0; i < len.length; i++) {
            pieceStart[i + 1] = pieceStart[i] + (len[i] + pieceBytes - 1) / pieceBytes;
            total += len[i];
        }
        this.totalBytes = total;
    }

    /**
     * Runs for planned transfers (each a remote range into a local one).
     *
     * @param srcBias added to every remote offset: where the remote region starts inside the memory the gather
     *                reads (an imported allocation may hold more than the region)
     */
    public static CopyRuns of(List<ReadOp> transfers, long srcBias, long pieceBytes) {
        if (pieceBytes < 16 || pieceBytes % 16 != 0) {
            throw new IllegalArgumentException("piece size must be a positive multiple of 16, got " + pieceBytes);
        }
        if (srcBias < 0) {
            throw new IllegalArgumentException("source bias must be >= 0, got " + srcBias);
        }
        int n = transfers.size();
        long[] s = new long[n];
        long[] d = new long[n];
        long[] l = new long[n];
        for (int i = 0; i < n; i++) {
            ReadOp op = transfers.get(i);
            if (op.length() <= 0 || op.remoteOffset() < 0 || op.localOffset() < 0) {
                throw new IllegalArgumentException("run " + i + " is not a valid range: " + op);
            }
            s[i] = Math.addExact(op.remoteOffset(), srcBias);
            d[i] = op.localOffset();
            l[i] = op.length();
        }
        return new CopyRuns(s, d, l, pieceBytes);
    }

    public static CopyRuns of(List<ReadOp> transfers) {
        return of(transfers, 0, DEFAULT_PIECE_BYTES);
    }

    public int count() {
        return len.length;
    }

    public long pieceBytes() {
        return pieceBytes;
    }

    /** Pieces over all runs: the work items of the launch. */
    public long pieces() {
        return pieceStart[len.length];
    }

    public long totalBytes() {
        return totalBytes;
    }

    public long srcOffset(int run) {
        return src[run];
    }

    public long dstOffset(int run) {
        return dst[run];
    }

    public long length(int run) {
        return len[run];
    }

    /** The highest source byte end, for a bounds check against the memory read. */
    public long srcEnd() {
        long end = 0;
        for (int i = 0; i < len.length; i++) {
            end = Math.max(end, src[i] + len[i]);
        }
        return end;
    }

    /** The highest destination byte end. */
    public long dstEnd() {
        long end = 0;
        for (int i = 0; i < len.length; i++) {
            end = Math.max(end, dst[i] + len[i]);
        }
        return end;
    }

    /** The run that piece {@code piece} belongs to: the kernel's binary search, for the host-side tests. */
    public int runOf(long piece) {
        if (piece < 0 || piece >= pieces()) {
            throw new IllegalArgumentException("piece " + piece + " outside [0, " + pieces() + ")");
        }
        int lo = 0;
        int hi = len.length - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (pieceStart[mid] <= piece) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    /** The layout the kernel reads (see the class comment). */
    public long[] encoded() {
        int n = len.length;
        long[] out = new long[4 * n + 1];
        System.arraycopy(src, 0, out, 0, n);
        System.arraycopy(dst, 0, out, n, n);
        System.arraycopy(len, 0, out, 2 * n, n);
        System.arraycopy(pieceStart, 0, out, 3 * n, n + 1);
        return out;
    }

    @Override
    public String toString() {
        return "CopyRuns[" + len.length + " runs, " + totalBytes + " bytes, " + pieces() + " pieces of " + pieceBytes
                + "]";
    }
}
