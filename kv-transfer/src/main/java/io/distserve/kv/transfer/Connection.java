package io.distserve.kv.transfer;

import java.util.List;

/**
 * A link from this engine's region to one peer's region, used by the pulling (decode) side. Thread-safe: several
 * threads may issue batches concurrently. If the link breaks, the batches in flight fail and the next
 * {@link #read} re-establishes it.
 */
public interface Connection extends AutoCloseable {

    EndpointInfo remote();

    /**
     * Starts a one-sided read: copies remote region bytes into the local region. Returns at once.
     *
     * @throws IllegalArgumentException if an op is invalid (see {@link ReadPlanner}); nothing has moved then
     * @throws IllegalStateException    if the connection is closed
     */
    TransferFuture read(List<ReadOp> ops);

    /** Fails the batches in flight, closes the link and joins its threads. Idempotent. */
    @Override
    void close();
}
