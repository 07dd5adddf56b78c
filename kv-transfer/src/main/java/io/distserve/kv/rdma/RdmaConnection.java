package io.distserve.kv.rdma;

import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.ReadPlan;
import io.distserve.kv.transfer.ReadPlanner;
import io.distserve.kv.transfer.RegionLayout;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A decode engine's link to one prefill engine's pool: one reliable-connected queue pair; each {@link #read}
 * posts its batch as one chain of RDMA READs ({@link WorkRequestPlanner}); a completion thread of its own polls the
 * completion queue and completes the batches. A failed completion or a dead queue pair fails every batch in flight
 * (naming the peer and what was outstanding) after the queue pair is closed, so no byte lands afterwards; the next
 * read connects again, as the tcp transport does.
 */
final class RdmaConnection implements Connection {

    private static final Logger LOG = LoggerFactory.getLogger(RdmaConnection.class);
    private static final Duration POLL = Duration.ofMillis(50);

    private final RdmaVerbs verbs;
    private final EndpointInfo remote;
    private final RdmaEndpoint peer;
    private final RdmaVerbs.Registration local;
    private final RegionLayout localLayout;
    private final ReadPlanner readPlanner;
    private final WorkRequestPlanner wrPlanner;
    private final Duration connectTimeout;
    private final Map<Integer, RdmaBatch> inFlight = new ConcurrentHashMap<>();
    private final AtomicInteger nextBatch = new AtomicInteger();
    private final Object lock = new Object();
    private final Object postLock = new Object();
    private RdmaVerbs.QueuePair qp;
    /** Free entries of the current queue pair's send queue (a new queue pair, a new count). */
    private Semaphore sendSlots;
    private Thread poller;
    private volatile boolean closed;

    RdmaConnection(RdmaVerbs verbs, EndpointInfo remote, RdmaVerbs.Registration local, RegionLayout localLayout,
                   ReadPlanner readPlanner, WorkRequestPlanner wrPlanner, Duration connectTimeout)
            throws TransferException {
        this.verbs = verbs;
        this.remote = remote;
        this.peer = RdmaEndpoint.parse(remote);
        this.local = local;
        this.localLayout = localLayout;
        this.readPlanner = readPlanner;
        this.wrPlanner = wrPlanner;
        this.connectTimeout = connectTimeout;
        synchronized (lock) {
            ensureConnected();
        }
    }

    @Override
    public EndpointInfo remote() {
        return remote;
    }

    @Override
    public TransferFuture read(List<ReadOp> ops) {
        if (closed) {
            throw new IllegalStateException("connection to " + remote.address() + " is closed");
        }
        ReadPlan plan = readPlanner.plan(ops, remote.layout(), localLayout); // IllegalArgumentException: nothing moved
        int id = nextBatch.getAndIncrement() & 0x7FFF_FFFF;
        List<ReadWorkRequest> chain = wrPlanner.plan(id, plan.transfers(), localLayout, local.segments(),
                remote.layout(), peer.segments());
        int signaled = (int) chain.stream().filter(ReadWorkRequest::signaled).count();
        RdmaBatch batch = new RdmaBatch(id, plan.totalBytes(), chain.size(), signaled, this::abortInFlight);
        if (chain.isEmpty()) {
            batch.completed();
            return batch;
        }
        // Posted in windows of signalEvery requests, each ending with a signalled one, while the send queue has room:
        // its completion retires the window's entries. A batch longer than the queue waits here for its own
        // earlier windows (the poller thread frees them); one that fits goes out at once.
        synchronized (postLock) {
            RdmaVerbs.QueuePair target;
            Semaphore slots;
            try {
                synchronized (lock) {
                    ensureConnected();
                    target = qp;
                    slots = sendSlots;
                }
                inFlight.put(id, batch);
                int window = wrPlanner.signalEvery();
                for (int from = 0; from < chain.size(); from += window) {
                    List<ReadWorkRequest> part = chain.subList(from, Math.min(chain.size(), from + window));
                    slots.acquire(part.size());
                    synchronized (lock) {
                        if (qp != target) {
                            break; // the queue pair failed meanwhile: failAll has failed this batch
                        }
                    }
                    target.post(part);
                }
            } catch (TransferException e) {
                inFlight.remove(id);
                batch.fail(new TransferException("posting " + chain.size() + " READs (" + plan.totalBytes()
                        + " bytes) to " + remote.address() + " failed: " + e.getMessage(), e));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                abortInFlight();
            }
        }
        return batch;
    }

    /** Connects the queue pair if there is none (first read, or after a failure) and starts its poller. */
    private void ensureConnected() throws TransferException {
        if (qp == null) {
            int depth = 2 * wrPlanner.signalEvery();
            qp = verbs.connect(remote.host(), remote.port(), depth, connectTimeout);
            sendSlots = new Semaphore(depth);
            RdmaVerbs.QueuePair mine = qp;
            poller = new Thread(() -> pollLoop(mine), "rdma-cq-" + remote.host() + ":" + remote.port());
            poller.setDaemon(true);
            poller.start();
        }
    }

    private void pollLoop(RdmaVerbs.QueuePair mine) {
        while (!closed) {
            List<RdmaVerbs.Completion> got;
            try {
                got = mine.poll(POLL);
            } catch (TransferException e) {
                failAll(mine, "the queue pair to " + remote.address() + " failed: " + e.getMessage());
                return;
            }
            for (RdmaVerbs.Completion c : got) {
                int batchId = (int) (c.wrId() >>> 32);
                RdmaBatch b = inFlight.get(batchId);
                if (b == null) {
                    continue; // a batch already failed or aborted
                }
                if (!c.ok()) {
                    failAll(mine, "READ " + (int) c.wrId() + " of batch " + batchId + " from " + remote.address()
                            + " failed: " + c.error());
                    return;
                }
                int k = wrPlanner.signalEvery();
                int index = (int) c.wrId();
                int retired = index - ((index / k) * k - 1); // this request and the unsignalled ones before it
                Semaphore slots;
                synchronized (lock) {
                    slots = qp == mine ? sendSlots : null;
                }
                if (slots != null) {
                    slots.release(retired);
                }
                if (b.completed()) {
                    inFlight.remove(batchId);
                }
            }
            synchronized (lock) {
                if (qp != mine) {
                    return; // replaced after a failure or an abort
                }
            }
        }
    }

    /** A batch timed out: close the queue pair (nothing lands after that), fail what was in flight. */
    private void abortInFlight() {
        RdmaVerbs.QueuePair mine;
        synchronized (lock) {
            mine = qp;
        }
        if (mine != null) {
            failAll(mine, "a batch to " + remote.address() + " timed out; its queue pair was closed");
        }
    }

    private void failAll(RdmaVerbs.QueuePair mine, String why) {
        synchronized (lock) {
            if (qp == mine) {
                qp = null;
                sendSlots.release(Integer.MAX_VALUE / 2); // a poster waiting for room sees the queue pair gone
            }
        }
        mine.close();
        long bytes = 0;
        int n = 0;
        for (RdmaBatch b : inFlight.values()) {
            bytes += b.bytes();
            n++;
        }
        String outstanding = n + " batch(es), " + bytes + " bytes outstanding";
        for (Integer id : List.copyOf(inFlight.keySet())) {
            RdmaBatch b = inFlight.remove(id);
            if (b != null) {
                b.fail(new TransferException(why + " (" + outstanding + ")"));
            }
        }
        if (n > 0) {
            LOG.warn("rdma: {} ({})", why, outstanding);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RdmaVerbs.QueuePair mine;
        Thread t;
        synchronized (lock) {
            mine = qp;
            t = poller;
        }
        if (mine != null) {
            failAll(mine, "the connection to " + remote.address() + " was closed");
        }
        if (t != null) {
            try {
                t.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
