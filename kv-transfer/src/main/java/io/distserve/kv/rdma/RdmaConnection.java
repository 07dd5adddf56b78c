package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.ReadPlan;
import io.distserve.kv.transfer.ReadPlanner;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A decode engine's link to one prefill engine's pool: {@link RdmaOptions#queuePairs()} reliable-connected queue
 * pairs (and a staging channel when the peer's pool is staged), each polled by a completion thread of its own.
 * When both pools are registered a migration is one chain of READs ({@link WorkRequestPlanner}) striped over the
 * queue pairs ({@link StripePlanner}), each share posted in windows that fit its send queue; otherwise it goes
 * through the {@link StagedPipeline}. A failed completion on any queue pair, a broken staging channel or a timeout
 * closes all of them (no byte lands afterwards) and fails every batch in flight on them, naming the peer and what
 * was outstanding; the next read connects again, as the tcp transport does.
 */
final class RdmaConnection implements Connection {

    private static final Logger LOG = LoggerFactory.getLogger(RdmaConnection.class);

    /** A batch in flight, as a failure or a completion of its links reaches it. */
    private interface InFlight {
        PeerLinks links();

        long bytes();

        void completed(RdmaVerbs.Completion c);

        void fail(TransferException e);
    }

    private record DirectBatch(RdmaBatch batch, PeerLinks links) implements InFlight {
        @Override
        public long bytes() {
            return batch.bytes();
        }

        @Override
        public void completed(RdmaVerbs.Completion c) {
            batch.completed();
        }

        @Override
        public void fail(TransferException e) {
            batch.fail(e);
        }
    }

    private record StagedBatch(StagedPipeline.Batch batch, StagedPipeline pipeline) implements InFlight {
        @Override
        public PeerLinks links() {
            return batch.links;
        }

        @Override
        public long bytes() {
            return batch.future.bytes();
        }

        @Override
        public void completed(RdmaVerbs.Completion c) {
            pipeline.readCompleted(c.wrId());
        }

        @Override
        public void fail(TransferException e) {
            pipeline.fail(batch, e);
        }
    }

    private final RdmaVerbs verbs;
    private final EndpointInfo remote;
    private final RdmaEndpoint peer;
    private final RdmaOptions options;
    private final StagedPipeline.Route route;
    private final ReadPlanner readPlanner;
    private final WorkRequestPlanner wrPlanner;
    private final StripePlanner stripes;
    private final Duration connectTimeout;
    private final StagedPipeline pipeline;
    private final Map<Integer, InFlight> inFlight = new ConcurrentHashMap<>();
    private final AtomicInteger nextBatch = new AtomicInteger();
    private final Object lock = new Object();
    private final Object postLock = new Object();
    /** Every queue pair made, until its completion thread has ended: joined at close. Guarded by lock. */
    private final List<QueuePairLink> started = new ArrayList<>();
    private PeerLinks current; // guarded by lock
    private volatile boolean closed;

    /**
     * @param localPool the pool, when READs land in pinned buffers and are copied to it (else null)
     * @param landing   those buffers, owned by the connection from here on (null likewise)
     */
    RdmaConnection(RdmaVerbs verbs, EndpointInfo remote, RdmaEndpoint peer, RdmaOptions options,
                   StagedPipeline.Route route, DeviceRegion localPool, PinnedSlots landing, Duration connectTimeout)
            throws TransferException {
        this.verbs = verbs;
        this.remote = remote;
        this.peer = peer;
        this.options = options;
        this.route = route;
        // runs are cut at the NIC's max message only after striping (WorkRequestPlanner), or into slots (staged):
        // here they stay whole, so that the queue pairs' shares come out even
        this.readPlanner = new ReadPlanner(Integer.MAX_VALUE);
        this.wrPlanner = new WorkRequestPlanner(options.maxMessageBytes(), options.signalEvery());
        this.stripes = new StripePlanner(options.minStripeBytes());
        this.connectTimeout = connectTimeout;
        boolean staged = route.sourceStaged() || route.landingStaged();
        this.pipeline = staged ? new StagedPipeline(peerName(), route, localPool, landing,
                options.maxMessageBytes(), this::failLinks) : null;
        try {
            synchronized (lock) {
                connected();
            }
        } catch (TransferException | RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public EndpointInfo remote() {
        return remote;
    }

    private String peerName() {
        return remote.host() + ":" + remote.port();
    }

    @Override
    public TransferFuture read(List<ReadOp> ops) {
        if (closed) {
            throw new IllegalStateException("connection to " + remote.address() + " is closed");
        }
        // IllegalArgumentException here: nothing moved
        ReadPlan plan = readPlanner.plan(ops, route.remoteLayout(), route.localLayout());
        int id = nextBatch.getAndIncrement() & 0x7FFF_FFFF;
        synchronized (postLock) {
            PeerLinks links;
            try {
                synchronized (lock) {
                    links = connected();
                }
            } catch (TransferException e) {
                RdmaBatch failed = new RdmaBatch(id, plan.totalBytes(), 0, 1, () -> { });
                failed.fail(new TransferException("reconnecting to " + remote.address() + " failed: "
                        + e.getMessage(), e));
                return failed;
            }
            return pipeline == null ? readDirect(id, plan, links) : readStaged(id, plan, links);
        }
    }

    /** One chain of READs striped over the queue pairs, each share posted in windows while its send queue has room. */
    private TransferFuture readDirect(int id, ReadPlan plan, PeerLinks links) {
        List<QueuePairLink> qps = links.queuePairs();
        List<List<ReadOp>> lanes = stripes.stripe(plan.transfers(), qps.size());
        List<List<ReadWorkRequest>> chains = new ArrayList<>();
        int requests = 0;
        int signaled = 0;
        for (List<ReadOp> lane : lanes) {
            List<ReadWorkRequest> chain = wrPlanner.plan(id, lane, route.local(), route.remote());
            chains.add(chain);
            requests += chain.size();
            signaled += (int) chain.stream().filter(ReadWorkRequest::signaled).count();
        }
        RdmaBatch batch = new RdmaBatch(id, plan.totalBytes(), requests, signaled, () -> failLinks(links,
                "a batch to " + remote.address() + " timed out; its queue pairs were closed"));
        if (requests == 0) {
            batch.completed();
            return batch;
        }
        track(id, new DirectBatch(batch, links), batch);
        int window = wrPlanner.signalEvery();
        try {
            for (int from = 0; ; from += window) {
                boolean any = false;
                for (int q = 0; q < chains.size(); q++) {
                    List<ReadWorkRequest> chain = chains.get(q);
                    if (from < chain.size()) {
                        qps.get(q).post(chain.subList(from, Math.min(chain.size(), from + window)));
                        any = true;
                    }
                }
                if (!any) {
                    break;
                }
            }
        } catch (TransferException e) {
            failLinks(links, "posting " + requests + " READs (" + plan.totalBytes() + " bytes) to " + remote.address()
                    + " failed: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            failLinks(links, "posting to " + remote.address() + " was interrupted");
        }
        return batch;
    }

    /** Hands the batch, cut into pieces of at most a slot, to the staged pipeline. */
    private TransferFuture readStaged(int id, ReadPlan plan, PeerLinks links) {
        List<ReadOp> pieces = StagedPipeline.cut(plan.transfers(), pipeline.pieceBytes(links));
        RdmaBatch batch = new RdmaBatch(id, plan.totalBytes(), pieces.size(), Math.max(1, pieces.size()),
                () -> failLinks(links, "a batch to " + remote.address() + " timed out; its queue pairs and staging "
                        + "channel were closed"));
        if (pieces.isEmpty()) {
            batch.completed();
            return batch;
        }
        StagedPipeline.Batch b = new StagedPipeline.Batch(id, batch, pieces, links);
        track(id, new StagedBatch(b, pipeline), batch);
        if (!pipeline.submit(b)) {
            inFlight.remove(id);
            batch.fail(new TransferException("the connection to " + remote.address() + " was closed"));
        }
        return batch;
    }

    private void track(int id, InFlight f, RdmaBatch batch) {
        inFlight.put(id, f);
        batch.completion().whenComplete((r, t) -> inFlight.remove(id, f));
    }

    /** The current links, connecting them first if there are none (first read, or after a failure). */
    private PeerLinks connected() throws TransferException {
        if (current != null) {
            return current;
        }
        started.removeIf(QueuePairLink::finished);
        PeerLinks links = new PeerLinks();
        QueuePairLink.Listener listener = new QueuePairLink.Listener() {
            @Override
            public void completed(QueuePairLink link, RdmaVerbs.Completion c) {
                InFlight f = inFlight.get((int) (c.wrId() >>> 32));
                if (f != null && f.links() == links) {
                    f.completed(c);
                }
            }

            @Override
            public void failed(QueuePairLink link, String why) {
                failLinks(links, why);
            }
        };
        try {
            for (int i = 0; i < options.queuePairs(); i++) {
                RdmaVerbs.QueuePair qp = verbs.connect(remote.host(), remote.port(), options.sendDepth(),
                        connectTimeout);
                QueuePairLink link = new QueuePairLink(qp, i, options.sendDepth(), peerName(), listener);
                links.add(link);
                started.add(link);
            }
            if (route.sourceStaged()) {
                links.staging(StagingClient.open(remote.host(), peer.stagingPort(), remote.token(), connectTimeout,
                        stagingListener(links)));
            }
        } catch (TransferException | RuntimeException e) {
            links.close();
            throw e;
        }
        current = links;
        return links;
    }

    private StagingClient.Listener stagingListener(PeerLinks links) {
        return new StagingClient.Listener() {
            @Override
            public void staged(long requestId) {
                pipeline.staged(requestId);
            }

            @Override
            public void refused(long requestId, String why) {
                pipeline.refused(requestId, why);
            }

            @Override
            public void broken(String why) {
                failLinks(links, why);
            }
        };
    }

    /**
     * Tears a peer's links down (no READ lands after this) and fails the batches in flight on them, naming the peer
     * and what was outstanding. The next read connects again. Idempotent.
     */
    void failLinks(PeerLinks links, String reason) {
        String why = links.failure(reason);
        synchronized (lock) {
            if (current == links) {
                current = null;
            }
        }
        links.close();
        List<Map.Entry<Integer, InFlight>> mine = inFlight.entrySet().stream()
                .filter(e -> e.getValue().links() == links).toList();
        long bytes = mine.stream().mapToLong(e -> e.getValue().bytes()).sum();
        String outstanding = (why.contains(remote.address()) ? "" : "peer " + remote.address() + ", ")
                + mine.size() + " batch(es), " + bytes + " bytes outstanding";
        for (Map.Entry<Integer, InFlight> e : mine) {
            if (inFlight.remove(e.getKey(), e.getValue())) {
                e.getValue().fail(new TransferException(why + " (" + outstanding + ")"));
            }
        }
        if (!mine.isEmpty()) {
            LOG.warn("rdma: {} ({})", why, outstanding);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        PeerLinks links;
        synchronized (lock) {
            links = current;
        }
        if (links != null) {
            failLinks(links, "the connection to " + remote.address() + " was closed");
        }
        if (pipeline != null) {
            pipeline.close();
        }
        List<QueuePairLink> all;
        synchronized (lock) {
            all = List.copyOf(started);
            started.clear();
        }
        for (QueuePairLink l : all) {
            try {
                l.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
