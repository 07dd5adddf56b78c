package io.distserve.kv.transfer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Turns a caller's list of {@link ReadOp}s into the fewest transfers a transport can issue: pure logic, no I/O.
 *
 * <ol>
 *   <li>Validate every op: offsets non-negative, length positive (a zero-length op is rejected, not ignored: it is
 *       always a block-arithmetic bug in the caller, and ignoring it would hide that), no overflow, inside both
 *       regions.</li>
 *   <li>Reject overlapping local destinations: two ops writing the same local bytes race on the wire and the result
 *       would depend on arrival order. Overlapping remote sources are fine (the same bytes read twice).</li>
 *   <li>Coalesce ops whose remote AND local ranges are both contiguous (sorted by local offset, the successor of an
 *       op is unique because local ranges don't overlap).</li>
 *   <li>Split at every segment end of either region, and at {@code maxTransferBytes}.</li>
 * </ol>
 * Any violation throws {@link IllegalArgumentException} naming the op index and the offending range, before anything
 * is sent.
 */
public final class ReadPlanner {

    private final long maxTransferBytes;

    public ReadPlanner(long maxTransferBytes) {
        if (maxTransferBytes <= 0 || maxTransferBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("maxTransferBytes must be in (0, 2^31): " + maxTransferBytes);
        }
        this.maxTransferBytes = maxTransferBytes;
    }

    public long maxTransferBytes() {
        return maxTransferBytes;
    }

    public ReadPlan plan(List<ReadOp> ops, RegionLayout remote, RegionLayout local) {
        if (ops == null) {
            throw new IllegalArgumentException("ops is null");
        }
        Integer[] order = new Integer[ops.size()];
        for (int i = 0; i < ops.size(); i++) {
            validate(i, ops.get(i), remote, local);
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingLong(i -> ops.get(i).localOffset()));
        for (int k = 1; k < order.length; k++) {
            ReadOp prev = ops.get(order[k - 1]);
            ReadOp cur = ops.get(order[k]);
            if (cur.localOffset() < prev.localEnd()) {
                throw new IllegalArgumentException("ops " + order[k - 1] + " and " + order[k]
                        + " overlap in the local region: [" + prev.localOffset() + ", " + prev.localEnd() + ") and ["
                        + cur.localOffset() + ", " + cur.localEnd() + ")");
            }
        }
        List<ReadOp> merged = new ArrayList<>();
        long total = 0;
        ReadOp run = null;
        for (Integer i : order) {
            ReadOp op = ops.get(i);
            total += op.length();
            if (run != null && run.localEnd() == op.localOffset() && run.remoteEnd() == op.remoteOffset()) {
                run = new ReadOp(run.remoteOffset(), run.localOffset(), run.length() + op.length());
            } else {
                if (run != null) {
                    merged.add(run);
                }
                run = op;
            }
        }
        if (run != null) {
            merged.add(run);
        }
        List<ReadOp> out = new ArrayList<>(merged.size());
        for (ReadOp m : merged) {
            split(m, remote, local, out);
        }
        return new ReadPlan(out, total, ops.size());
    }

    private void split(ReadOp op, RegionLayout remote, RegionLayout local, List<ReadOp> out) {
        long r = op.remoteOffset();
        long l = op.localOffset();
        long left = op.length();
        while (left > 0) {
            long n = Math.min(left, maxTransferBytes);
            n = Math.min(n, remote.segmentEnd(r) - r);
            n = Math.min(n, local.segmentEnd(l) - l);
            out.add(new ReadOp(r, l, n));
            r += n;
            l += n;
            left -= n;
        }
    }

    private static void validate(int i, ReadOp op, RegionLayout remote, RegionLayout local) {
        if (op == null) {
            throw new IllegalArgumentException("op " + i + " is null");
        }
        if (op.length() <= 0) {
            throw new IllegalArgumentException("op " + i + " has length " + op.length()
                    + "; lengths must be positive (zero-length reads are rejected)");
        }
        checkSide(i, "remote", op.remoteOffset(), op.length(), remote.size());
        checkSide(i, "local", op.localOffset(), op.length(), local.size());
    }

    private static void checkSide(int i, String side, long offset, long length, long regionSize) {
        if (offset < 0) {
            throw new IllegalArgumentException("op " + i + " has negative " + side + " offset " + offset);
        }
        // offset + length > regionSize, written so it cannot overflow (both are non-negative here)
        if (length > regionSize || offset > regionSize - length) {
            throw new IllegalArgumentException("op " + i + " reads " + length + " bytes at " + side + " offset "
                    + offset + ", outside the " + side + " region [0, " + regionSize + ")");
        }
    }
}
