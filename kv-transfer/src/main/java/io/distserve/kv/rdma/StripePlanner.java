package io.distserve.kv.rdma;

import io.distserve.kv.transfer.ReadOp;
import java.util.ArrayList;
import java.util.List;

/**
 * Spreads one migration's runs over a connection's queue pairs, as even in bytes as can be: the lanes are filled in
 * turn up to a share of {@code ceil(total / lanes)} bytes (at least {@code minStripeBytes}, so a small batch is not
 * cut into slivers), a run that crosses a share's end split there. So a 2k-token migration that coalesced into one
 * 302 MB READ becomes one READ of ~151 MB on each of two queue pairs, and at most {@code lanes - 1} runs are split.
 * Splitting a run keeps both halves inside its memory regions.
 */
final class StripePlanner {

    private final long minStripeBytes;

    StripePlanner(long minStripeBytes) {
        if (minStripeBytes < 1) {
            throw new IllegalArgumentException("minStripeBytes must be positive: " + minStripeBytes);
        }
        this.minStripeBytes = minStripeBytes;
    }

    /** {@code lanes} lists of runs (some empty when the batch is small), in the runs' order. */
    List<List<ReadOp>> stripe(List<ReadOp> runs, int lanes) {
        if (lanes < 1) {
            throw new IllegalArgumentException("lanes must be positive: " + lanes);
        }
        long total = 0;
        for (ReadOp r : runs) {
            total += r.length();
        }
        long share = Math.max(minStripeBytes, (total + lanes - 1) / lanes);
        List<List<ReadOp>> out = new ArrayList<>();
        for (int i = 0; i < lanes; i++) {
            out.add(new ArrayList<>());
        }
        int lane = 0;
        long filled = 0;
        for (ReadOp r : runs) {
            long done = 0;
            while (done < r.length()) {
                if (filled == share && lane < lanes - 1) {
                    lane++;
                    filled = 0;
                }
                long n = lane == lanes - 1 ? r.length() - done : Math.min(r.length() - done, share - filled);
                out.get(lane).add(new ReadOp(r.remoteOffset() + done, r.localOffset() + done, n));
                done += n;
                filled += n;
            }
        }
        return out;
    }
}
