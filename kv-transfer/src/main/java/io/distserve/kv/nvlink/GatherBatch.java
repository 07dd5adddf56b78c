package io.distserve.kv.nvlink;

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
 * One gather launch in flight. It completes when the launch's event has (the completer thread waits for it), so a
 * completed batch, failed or not, writes no more bytes. A launch cannot be cut off once running: an {@link #await}
 * that times out throws, and {@link #completion()} still completes when the copy ends (microseconds to a few
 * milliseconds later), which is when the caller may reuse the local blocks.
 */
final class GatherBatch implements TransferFuture {

    private final String peer;
    private final long bytes;
    private final int runs;
    private final long startNanos = System.nanoTime();
    private final CompletableFuture<TransferResult> future = new CompletableFuture<>();

    GatherBatch(String peer, long bytes, int runs) {
        this.peer = peer;
        this.bytes = bytes;
        this.runs = runs;
    }

    static GatherBatch empty(String peer) {
        GatherBatch b = new GatherBatch(peer, 0, 0);
        b.done();
        return b;
    }

    void done() {
        future.complete(new TransferResult(bytes, runs, System.nanoTime() - startNanos));
    }

    void failed(Throwable cause) {
        future.completeExceptionally(new TransferException("gather of " + bytes + " bytes from " + peer + " failed: "
                + cause.getMessage(), cause));
    }

    @Override
    public boolean isDone() {
        return future.isDone();
    }

    @Override
    public CompletionStage<TransferResult> completion() {
        return future.copy();
    }

    @Override
    public TransferResult await(Duration timeout) throws TransferException, InterruptedException {
        try {
            return future.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof TransferException te) {
                throw te;
            }
            throw new TransferException(String.valueOf(e.getCause()), e.getCause());
        } catch (TimeoutException e) {
            throw new TransferTimeoutException("gather of " + bytes + " bytes from " + peer + " did not finish within "
                    + timeout + " (it cannot be cut off; its blocks are free again when it ends)");
        }
    }
}
