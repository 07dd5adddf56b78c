package io.distserve.kv.transfer;

import java.util.List;

/**
 * What a batch of reads becomes on the wire: coalesced, split, validated transfers.
 *
 * @param transfers  the transfers, each inside one segment of both regions and at most the max transfer size
 * @param totalBytes sum of the transfer lengths (equal to the sum of the requested lengths)
 * @param requested  how many ops the caller asked for
 */
public record ReadPlan(List<ReadOp> transfers, long totalBytes, int requested) {
    public ReadPlan {
        transfers = List.copyOf(transfers);
    }
}
