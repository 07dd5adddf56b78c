package io.distserve.kv.transfer;

import java.time.Duration;
import java.util.concurrent.CompletionStage;

/** A batch of reads in flight. */
public interface TransferFuture {

    boolean isDone();

    /**
     * Waits for the batch. On timeout the batch is aborted first (its in-flight reads are cut off so no byte of it
     * lands after this returns), then {@link TransferTimeoutException} is thrown; the connection re-establishes
     * itself on the next read.
     *
     * @throws TransferException the batch failed (dead peer, error frame, timeout); the message says which peer and
     *                           how much was outstanding
     */
    TransferResult await(Duration timeout) throws TransferException, InterruptedException;

    /**
     * Completes when the batch has finished; exceptionally with a {@link TransferException} when it failed. A failed
     * batch completes only once none of its bytes can land any more, so the caller may reuse the local blocks.
     */
    CompletionStage<TransferResult> completion();
}
