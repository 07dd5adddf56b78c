package io.distserve.kv.tcp;

import io.distserve.kv.transfer.ReadOp;

/** One wire transfer waiting for its response on a stream. */
record PendingRead(InFlightBatch batch, long requestId, ReadOp op) {
}
