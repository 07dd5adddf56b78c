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
 * One migration in flight: done when every signalled READ of it has completed (on a reliable connection a
 * completion implies every request posted before it; counting them all also holds when completions come out of
 * order or over several queue pairs), or, when staged, every piece has landed; failed on the first error
 * completion or when the connection dies.
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

    /** A signalled request (or a staged piece) of this batch completed well; returns whether the batch is now done. */
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
            abort.run(); // its queue pairs go to the error state: no READ of this batch lands after this
            // and a staged batch is failed by its stager once its copies to the GPU have run: wait for that too, so
            // that the caller may reuse the blocks when this throws
            done.handle((r, t) -> null).join();
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
