package io.distserve.kv.rdma;

import io.distserve.kv.transfer.ReadOp;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns a migration's reads (already validated and coalesced by {@link io.distserve.kv.transfer.ReadPlanner}:
 * whole runs of adjacent blocks, split at the regions' segment ends) into RDMA READ work requests: each run split
 * at the NIC's maximum message size, the chain signalled at its last request and every {@code signalEvery}
 * requests before it, so that the send queue's unsignalled entries are reaped before it fills.
 */
final class WorkRequestPlanner {

    private final long maxMessageBytes;
    private final int signalEvery;

    /**
     * @param maxMessageBytes the NIC's max_msg_sz (1 GiB on ConnectX-7; at most 2^31 - 1, a READ's length field)
     * @param signalEvery     at most this many requests in a row unsignalled: half the send queue's depth
     */
    WorkRequestPlanner(long maxMessageBytes, int signalEvery) {
        if (maxMessageBytes < 1 || maxMessageBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("maxMessageBytes must be in [1, 2^31): " + maxMessageBytes);
        }
        if (signalEvery < 1) {
            throw new IllegalArgumentException("signalEvery must be >= 1: " + signalEvery);
        }
        this.maxMessageBytes = maxMessageBytes;
        this.signalEvery = signalEvery;
    }

    /**
     * The work requests of one batch (or of one queue pair's share of it), indexed from 0. Each run lies within one
     * memory region on both sides (the read planner splits at region ends), which gives its address and key.
     */
    List<ReadWorkRequest> plan(int batch, List<ReadOp> runs, RegisteredLayout local, RegisteredLayout remote) {
        List<ReadWorkRequest> out = new ArrayList<>();
        int count = 0;
        for (ReadOp op : runs) {
            count += (int) ((op.length() + maxMessageBytes - 1) / maxMessageBytes);
        }
        int i = 0;
        for (ReadOp op : runs) {
            RdmaVerbs.Segment l = local.at(op.localOffset());
            RdmaVerbs.Segment r = remote.at(op.remoteOffset());
            for (long done = 0; done < op.length(); done += maxMessageBytes) {
                long n = Math.min(maxMessageBytes, op.length() - done);
                boolean signaled = i == count - 1 || (i + 1) % signalEvery == 0;
                out.add(new ReadWorkRequest(ReadWorkRequest.wrId(batch, i), l.address() + done, l.lkey(),
                        r.address() + done, r.rkey(), (int) n, signaled));
                i++;
            }
        }
        return out;
    }

    long maxMessageBytes() {
        return maxMessageBytes;
    }

    int signalEvery() {
        return signalEvery;
    }
}
