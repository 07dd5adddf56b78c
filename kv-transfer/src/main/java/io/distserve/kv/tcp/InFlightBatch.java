package io.distserve.kv.tcp;

import io.distserve.kv.transfer.RemoteTransferException;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferResult;
import io.distserve.kv.transfer.TransferTimeoutException;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Bookkeeping for one batch: counts its wire transfers down as streams finish or fail them, and completes the future
 * when the last one is accounted for. A failed batch therefore completes only when no stream can still write into
 * its local ranges (in-flight ones are either finished, drained into scratch, or cut off by a closed socket).
 */
final class InFlightBatch implements TransferFuture {

    /** How long await() waits, after aborting a timed-out batch, for its streams to let go of it. */
    private static final long ABORT_GRACE_MS = 5_000;

    private final String peer;
    private final int transfers;
    private final long totalBytes;
    private final long startNanos = System.nanoTime();
    private final CompletableFuture<TransferResult> future = new CompletableFuture<>();
    private final AtomicInteger remaining;
    private final AtomicLong bytesDone = new AtomicLong();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final List<TcpStream> streams = new CopyOnWriteArrayList<>();
    private volatile String outstandingAtFailure = "";

    InFlightBatch(String peer, int transfers, long totalBytes) {
        this.peer = peer;
        this.transfers = transfers;
        this.totalBytes = totalBytes;
        this.remaining = new AtomicInteger(transfers);
        if (transfers == 0) {
            future.complete(new TransferResult(0, 0, 0));
        }
    }

    static InFlightBatch failed(String peer, int transfers, long totalBytes, Throwable cause) {
        InFlightBatch b = new InFlightBatch(peer, transfers, totalBytes);
        for (int i = 0; i < transfers; i++) {
            b.pieceFailed(cause);
        }
        return b;
    }

    void usesStreams(Collection<TcpStream> used) {
        streams.addAll(used);
    }

    /** True once any transfer failed: later data for this batch is drained, not written into the region. */
    boolean isFailed() {
        return failure.get() != null;
    }

    void pieceDone(long bytes) {
        bytesDone.addAndGet(bytes);
        if (remaining.decrementAndGet() == 0) {
            finish();
        }
    }

    void pieceFailed(Throwable cause) {
        recordFailure(cause);
        if (remaining.decrementAndGet() == 0) {
            finish();
        }
    }

    private void recordFailure(Throwable cause) {
        if (failure.compareAndSet(null, cause)) {
            long left = totalBytes - bytesDone.get();
            outstandingAtFailure = remaining.get() + " of " + transfers + " transfers (" + mib(left) + " of "
                    + mib(totalBytes) + ") were outstanding";
        }
    }

    private void finish() {
        Throwable cause = failure.get();
        if (cause == null) {
            future.complete(new TransferResult(totalBytes, transfers, System.nanoTime() - startNanos));
            return;
        }
        String msg = "read batch from " + peer + " failed: " + cause.getMessage() + "; " + outstandingAtFailure;
        TransferException e;
        if (cause instanceof TransferTimeoutException) {
            e = new TransferTimeoutException(msg);
            e.initCause(cause);
        } else if (cause instanceof RemoteTransferException) {
            e = new RemoteTransferException(msg);
            e.initCause(cause);
        } else {
            e = new TransferException(msg, cause);
        }
        future.completeExceptionally(e);
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
            throw unwrap(e);
        } catch (TimeoutException e) {
            abort(new TransferTimeoutException("no completion within " + timeout));
            try {
                return future.get(ABORT_GRACE_MS, TimeUnit.MILLISECONDS); // completes exceptionally, normally
            } catch (ExecutionException e2) {
                throw unwrap(e2);
            } catch (TimeoutException e2) {
                throw new TransferTimeoutException("read batch from " + peer + " timed out after " + timeout
                        + " and its streams did not let go within " + ABORT_GRACE_MS + " ms");
            }
        }
    }

    /** Fails the batch and cuts its streams, so their readers stop writing into the local region. */
    void abort(TransferException cause) {
        recordFailure(cause);
        for (TcpStream s : streams) {
            s.breakStream(cause);
        }
    }

    private static TransferException unwrap(ExecutionException e) {
        Throwable c = e.getCause();
        if (c instanceof TransferException te) {
            return te;
        }
        return new TransferException(String.valueOf(c), c);
    }

    static String mib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }
}
