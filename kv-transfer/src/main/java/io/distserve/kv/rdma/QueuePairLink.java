package io.distserve.kv.rdma;

import io.distserve.kv.transfer.TransferException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;

/**
 * One queue pair of a connection, with its send-queue window and the completion thread that polls it
 * ({@code kv-rdma-cq-<host:port>-q<i>}). A poster takes a send-queue entry per request before posting; a signalled
 * request's completion gives back its own entry and those of the unsignalled requests posted with it (on a reliable
 * connection a completion implies every request posted before it). Completions and failures go to the
 * {@link Listener}.
 */
final class QueuePairLink implements AutoCloseable {

    private static final Duration POLL = Duration.ofMillis(50);

    /** Called on the completion thread. */
    interface Listener {
        void completed(QueuePairLink link, RdmaVerbs.Completion c);

        /** The queue pair failed (an error completion, a failed poll): the link polls no more. */
        void failed(QueuePairLink link, String why);
    }

    private final RdmaVerbs.QueuePair qp;
    private final int index;
    private final Semaphore sendSlots;
    /** Entries a signalled request retires when it completes, by its wrId; recorded before it is posted. */
    private final Map<Long, Integer> retires = new ConcurrentHashMap<>();
    private final Listener listener;
    private final Thread poller;
    private volatile boolean closed;

    QueuePairLink(RdmaVerbs.QueuePair qp, int index, int depth, String peer, Listener listener) {
        this.qp = qp;
        this.index = index;
        this.sendSlots = new Semaphore(depth);
        this.listener = listener;
        this.poller = new Thread(this::pollLoop, "kv-rdma-cq-" + peer + "-q" + index);
        this.poller.setDaemon(true);
        this.poller.start();
    }

    int index() {
        return index;
    }

    /**
     * Posts a window of requests that ends with a signalled one, once the send queue has room for it.
     *
     * @throws TransferException if the queue pair is closed or the post fails
     */
    void post(List<ReadWorkRequest> window) throws TransferException, InterruptedException {
        if (window.isEmpty() || !window.get(window.size() - 1).signaled()) {
            throw new IllegalArgumentException("a window must end with a signalled request");
        }
        sendSlots.acquire(window.size());
        if (closed) {
            throw new TransferException("queue pair " + index + " is closed");
        }
        int since = 0;
        for (ReadWorkRequest r : window) {
            since++;
            if (r.signaled()) {
                retires.put(r.wrId(), since);
                since = 0;
            }
        }
        qp.post(window);
    }

    private void pollLoop() {
        while (!closed) {
            List<RdmaVerbs.Completion> got;
            try {
                got = qp.poll(POLL);
            } catch (TransferException e) {
                if (!closed) {
                    listener.failed(this, "polling queue pair " + index + " failed: " + e.getMessage());
                }
                return;
            }
            for (RdmaVerbs.Completion c : got) {
                if (!c.ok()) {
                    listener.failed(this, "READ " + (int) c.wrId() + " of batch " + (int) (c.wrId() >>> 32)
                            + " on queue pair " + index + " failed: " + c.error());
                    return;
                }
                Integer n = retires.remove(c.wrId());
                if (n != null) {
                    sendSlots.release(n);
                }
                listener.completed(this, c);
            }
        }
    }

    /**
     * Closes the queue pair (no READ lands after this) and wakes a poster waiting for room. Does not wait for the
     * completion thread, which may be the caller, or another link's that fails at the same moment: {@link #join}.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        qp.close();
        sendSlots.release(Integer.MAX_VALUE / 2);
    }

    /** Waits for the completion thread to end (after {@link #close}: within one poll). */
    void join() throws InterruptedException {
        poller.join();
    }

    boolean finished() {
        return !poller.isAlive();
    }
}
