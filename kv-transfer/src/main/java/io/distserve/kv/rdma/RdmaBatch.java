package io.distserve.kv.rdma;

import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferResult;
import io.distserve.kv.transfer.TransferTimeoutException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One migration's READs in flight: done when every signalled request of it has completed (on a reliable
 * connection a completion implies every request posted before it; counting them all also holds when completions
 * come out of order), failed on the first error completion or when the connection dies.
 */
final class RdmaBatch implements TransferFuture {

    private final int id;
    private final long bytes;
    private final int requests;
    private final long startNanos = System.nanoTime();
    private final CompletableFuture<TransferResult> done = new CompletableFuture<>();
    private final Runnable abort;
    private int signaledLeft;

    RdmaBatch(int id, long bytes, int requests, int signaled, Runnable abort) {
        this.id = id;
        this.bytes = bytes;
        this.requests = requests;
        this.signaledLeft = signaled;
        this.abort = abort;
    }

    int id() {
        return id;
    }

    long bytes() {
        return bytes;
    }

    int requests() {
        return requests;
    }

    /** A signalled request of this batch completed well; returns whether the batch is now complete. */
    synchronized boolean completed() {
        if (--signaledLeft == 0) {
            done.complete(new TransferResult(bytes, requests, System.nanoTime() - startNanos));
            return true;
        }
        return false;
    }

    /** Fails the batch; only call once none of its READs can land any more. */
    void fail(TransferException e) {
        done.completeExceptionally(e);
    }

    @Override
    public boolean isDone() {
        return done.isDone();
    }

    @Override
    public CompletionStage<TransferResult> completion() {
        return done;
    }

    @Override
    public TransferResult await(Duration timeout) throws TransferException, InterruptedException {
        try {
            return done.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            abort.run(); // the queue pair goes to the error state: nothing of this batch lands after this
            throw new TransferTimeoutException("RDMA batch " + id + " (" + requests + " READs, " + bytes
                    + " bytes) did not complete in " + timeout.toMillis() + " ms");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof TransferException te) {
                throw te;
            }
            throw new TransferException("RDMA batch " + id + " failed: " + e.getCause(), e.getCause());
        }
    }
}
