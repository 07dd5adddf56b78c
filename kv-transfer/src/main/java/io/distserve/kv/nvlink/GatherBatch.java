package io.distserve.kv.nvlink;

import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferResult;
import io.distserve.kv.transfer.TransferTimeoutException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.locks.LockSupport;

/**
 * One gather launch in flight. It completes when the launch's event has, so a completed batch, failed or not,
 * writes no more bytes. Whoever sees the event first completes it: a caller in {@link #await} polls the event itself
 * (a gather takes tens of microseconds to a few milliseconds; a hand-off from another thread would cost as much as
 * the copy), and the transport's completer thread waits for it for callers that only use {@link #completion()}.
 * A launch cannot be cut off once running: an {@code await} that times out throws, and {@code completion()} still
 * completes when the copy ends, which is when the caller may reuse the local blocks.
 */
final class GatherBatch implements TransferFuture {

    /** Polling turns from spinning to short sleeps after this long (a copy of more than ~4 GB). */
    private static final long SPIN_NANOS = 2_000_000;

    private final String peer;
    private final long bytes;
    private final int runs;
    private final long startNanos = System.nanoTime();
    private final CompletableFuture<TransferResult> future = new CompletableFuture<>();
    private GpuEvent event; // guarded by this; null once released

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

    synchronized void launched(GpuEvent e) {
        this.event = e;
    }

    void done() {
        future.complete(new TransferResult(bytes, runs, System.nanoTime() - startNanos));
    }

    void failed(Throwable cause) {
        future.completeExceptionally(new TransferException("gather of " + bytes + " bytes from " + peer + " failed: "
                + cause.getMessage(), cause));
    }

    /**
     * The completer's side: waits for the event, completes the batch, frees the event. After this no one touches
     * the event again.
     */
    void settleAndRelease() {
        GpuEvent e;
        synchronized (this) {
            e = event;
            event = null;
        }
        if (e == null) {
            return;
        }
        try {
            e.await();
            done();
        } catch (RuntimeException ex) {
            failed(ex);
        } finally {
            e.close();
        }
    }

    /** A caller's side: completes the batch if its event has completed (does not wait, never frees the event). */
    private synchronized void pollEvent() {
        if (event == null || future.isDone()) {
            return;
        }
        try {
            if (event.isComplete()) {
                done();
            }
        } catch (RuntimeException ex) {
            failed(ex);
        }
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
        long start = System.nanoTime();
        long deadline = start + timeout.toNanos();
        while (!future.isDone()) {
            pollEvent();
            if (future.isDone()) {
                break;
            }
            long now = System.nanoTime();
            if (now - deadline >= 0) {
                throw new TransferTimeoutException("gather of " + bytes + " bytes from " + peer + " did not finish "
                        + "within " + timeout + " (it cannot be cut off; its blocks are free again when it ends)");
            }
            if (Thread.interrupted()) {
                throw new InterruptedException();
            }
            if (now - start < SPIN_NANOS) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(20_000);
            }
        }
        try {
            return future.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof TransferException te) {
                throw te;
            }
            throw new TransferException(String.valueOf(e.getCause()), e.getCause());
        }
    }
}
