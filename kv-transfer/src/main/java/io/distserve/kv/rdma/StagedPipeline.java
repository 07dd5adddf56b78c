package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceException;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.RegionLayout;
import io.distserve.kv.transfer.TransferException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Migrations that pass through pinned host memory on either side, pipelined over a few slots on a thread of the
 * connection's own ({@code kv-rdma-stage-<host:port>}). Each piece of a migration (at most a slot) goes, in its slot:
 * <ol>
 *   <li>when the peer's pool is staged: a STAGE request on the staging channel, answered once the peer has copied
 *       the piece device-to-host into the slot's staging buffer;</li>
 *   <li>one signalled RDMA READ, from that buffer or from the peer's registered pool, into this engine's registered
 *       pool or into the slot's landing buffer;</li>
 *   <li>when landing through pinned memory: a host-to-device copy on the ring's stream, after whose event the slot
 *       is free again.</li>
 * </ol>
 * The slots' pieces overlap: one is staged while another is read and a third copied to the GPU. A batch completes
 * when its last piece has landed; one that fails (a refused request, a failed READ, the connection torn down) fails
 * only once its host-to-device copies in flight have run, so no byte of it lands afterwards.
 */
final class StagedPipeline implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(StagedPipeline.class);

    private enum Kind { STAGED, REFUSED, READ, WAKE }

    private record Event(Kind kind, long wrId, String why) {
    }

    /**
     * How one connection's migrations are read: each side's pool layout, and where a side is READ or written
     * directly, its memory regions (null where that side goes through pinned buffers).
     */
    record Route(RegionLayout remotePool, RegisteredLayout remote, RegionLayout localPool, RegisteredLayout local) {
        boolean sourceStaged() {
            return remote == null;
        }

        boolean landingStaged() {
            return local == null;
        }

        /** What READs are planned against: the regions where there are some (no READ crosses one's end). */
        RegionLayout remoteLayout() {
            return remote == null ? remotePool : remote.layout();
        }

        RegionLayout localLayout() {
            return local == null ? localPool : local.layout();
        }
    }

    /** One migration in the pipeline: its pieces, the links it was planned on, and why it failed, if it did. */
    static final class Batch {
        final int id;
        final RdmaBatch future;
        final List<ReadOp> pieces;
        final PeerLinks links;
        private final AtomicReference<TransferException> failure = new AtomicReference<>();

        Batch(int id, RdmaBatch future, List<ReadOp> pieces, PeerLinks links) {
            this.id = id;
            this.future = future;
            this.pieces = List.copyOf(pieces);
            this.links = links;
        }
    }

    private final String peer;
    private final Route route;
    private final DeviceRegion localPool;
    private final PinnedSlots landing;
    private final long maxMessageBytes;
    private final BiConsumer<PeerLinks, String> abort;
    private final LinkedBlockingQueue<Batch> batches = new LinkedBlockingQueue<>();
    private final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
    private final Thread stager;
    private volatile boolean closed;

    /**
     * @param localPool the pool landings are copied into (null when READs land in it directly)
     * @param landing   the registered landing buffers and their stream (null likewise); closed with the pipeline
     * @param abort     tears a peer's links down and fails what is in flight on them, with a reason
     */
    StagedPipeline(String peer, Route route, DeviceRegion localPool, PinnedSlots landing, long maxMessageBytes,
                   BiConsumer<PeerLinks, String> abort) {
        if (route.landingStaged() != (landing != null)) {
            throw new IllegalArgumentException("landing buffers exactly when landing through pinned memory");
        }
        this.peer = peer;
        this.route = route;
        this.localPool = localPool;
        this.landing = landing;
        this.maxMessageBytes = maxMessageBytes;
        this.abort = abort;
        this.stager = new Thread(this::run, "kv-rdma-stage-" + peer);
        this.stager.setDaemon(true);
        this.stager.start();
    }

    /** The largest piece over these links: a staging slot, a landing slot, a READ. */
    long pieceBytes(PeerLinks links) {
        long n = maxMessageBytes;
        if (route.sourceStaged()) {
            n = Math.min(n, links.staging().welcome().slotBytes());
        }
        if (route.landingStaged()) {
            n = Math.min(n, landing.bytes());
        }
        return n;
    }

    /** {@code runs} cut into pieces of at most {@code max} bytes. */
    static List<ReadOp> cut(List<ReadOp> runs, long max) {
        List<ReadOp> out = new ArrayList<>();
        for (ReadOp r : runs) {
            for (long done = 0; done < r.length(); done += max) {
                out.add(new ReadOp(r.remoteOffset() + done, r.localOffset() + done, Math.min(max, r.length() - done)));
            }
        }
        return out;
    }

    /** Queues a batch; false once the pipeline is closed. */
    boolean submit(Batch b) {
        if (closed) {
            return false;
        }
        batches.add(b);
        return true;
    }

    /** A batch failed from outside (its links were torn down): the stager stops it once its copies have run. */
    void fail(Batch b, TransferException e) {
        b.failure.compareAndSet(null, e);
        events.add(new Event(Kind.WAKE, 0, null));
    }

    void staged(long requestId) {
        events.add(new Event(Kind.STAGED, requestId, null));
    }

    void refused(long requestId, String why) {
        events.add(new Event(Kind.REFUSED, requestId, why));
    }

    void readCompleted(long wrId) {
        events.add(new Event(Kind.READ, wrId, null));
    }

    private void run() {
        if (localPool != null) {
            localPool.device().bind();
        }
        try {
            while (true) {
                Batch b = batches.take();
                if (b.future == null) {
                    return; // the close marker
                }
                runBatch(b);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            if (landing != null) {
                landing.close();
            }
        }
    }

    /** The per-slot state of one batch. */
    private final class Slots {
        final int[] piece;
        final GpuEvent[] landed;
        final ArrayDeque<Integer> free = new ArrayDeque<>();
        final ArrayDeque<Integer> landing = new ArrayDeque<>();
        int busy; // staging or reading
        int finished; // pieces landed

        Slots(int n) {
            piece = new int[n];
            landed = new GpuEvent[n];
            Arrays.fill(piece, -1);
            for (int i = 0; i < n; i++) {
                free.add(i);
            }
        }

        int slotOf(int p) {
            for (int s = 0; s < piece.length; s++) {
                if (piece[s] == p) {
                    return s;
                }
            }
            return -1;
        }
    }

    private void runBatch(Batch b) throws InterruptedException {
        int n = b.pieces.size();
        int count = Integer.MAX_VALUE;
        if (route.sourceStaged()) {
            count = b.links.staging().welcome().slots().size();
        }
        if (route.landingStaged()) {
            count = Math.min(count, landing.count());
        }
        Slots slots = new Slots(count);
        int next = 0;
        try {
            while (slots.finished < n) {
                TransferException failed = b.failure.get();
                if (failed != null) {
                    throw failed;
                }
                while (next < n && !slots.free.isEmpty()) {
                    start(b, slots, slots.free.poll(), next++);
                }
                sweepLanded(slots, false);
                if (slots.finished == n) {
                    break;
                }
                if (slots.busy > 0) {
                    handle(b, slots, events.take());
                } else if (!slots.landing.isEmpty()) {
                    sweepLanded(slots, true);
                }
            }
        } catch (TransferException | RuntimeException e) {
            // a device fault, or a bug: either way the batch fails, and the stager goes on with the next
            TransferException why = e instanceof TransferException te ? te
                    : new TransferException("a migration from " + peer + " failed: " + e, e);
            // tears the links down (no READ of it lands after this) and fails every batch on them, this one
            // included, with the message that names the peer and what was outstanding
            abort.accept(b.links, why.getMessage());
            b.failure.compareAndSet(null, why);
            settleAll(slots);
            b.future.fail(b.failure.get());
            return;
        }
        for (int i = 0; i < n; i++) {
            b.future.completed();
        }
    }

    /** Starts piece {@code p} in a free slot. */
    private void start(Batch b, Slots slots, int slot, int p) throws TransferException, InterruptedException {
        slots.piece[slot] = p;
        slots.busy++;
        ReadOp piece = b.pieces.get(p);
        if (route.sourceStaged()) {
            b.links.staging().stage(new StagingProtocol.Stage(ReadWorkRequest.wrId(b.id, p), slot,
                    piece.remoteOffset(), (int) piece.length()));
        } else {
            read(b, slot, p, route.remote().at(piece.remoteOffset()));
        }
    }

    private void read(Batch b, int slot, int p, RdmaVerbs.Segment from) throws TransferException,
            InterruptedException {
        ReadOp piece = b.pieces.get(p);
        RdmaVerbs.Segment into = route.landingStaged() ? landing.segment(slot) : route.local().at(piece.localOffset());
        List<QueuePairLink> qps = b.links.queuePairs();
        qps.get(slot % qps.size()).post(List.of(new ReadWorkRequest(ReadWorkRequest.wrId(b.id, p), into.address(),
                into.lkey(), from.address(), from.rkey(), (int) piece.length(), true)));
    }

    /** One event of the current batch; those of batches already stopped are dropped. */
    private void handle(Batch b, Slots slots, Event e) throws TransferException, InterruptedException {
        if (e.kind() == Kind.WAKE || (int) (e.wrId() >>> 32) != b.id) {
            return;
        }
        int p = (int) e.wrId();
        int slot = slots.slotOf(p);
        if (slot < 0) {
            return;
        }
        switch (e.kind()) {
            case STAGED -> read(b, slot, p, b.links.staging().welcome().slots().get(slot));
            case REFUSED -> throw new TransferException("the prefill engine at " + peer + " refused to stage piece "
                    + p + " of batch " + b.id + " (" + b.pieces.get(p) + "): " + e.why());
            case READ -> {
                slots.busy--;
                if (route.landingStaged()) {
                    ReadOp piece = b.pieces.get(p);
                    landing.stream().copyToDevice(landing.buffer(slot), 0, localPool.memory(), piece.localOffset(),
                            (int) piece.length());
                    slots.landed[slot] = landing.stream().record();
                    slots.landing.add(slot);
                } else {
                    release(slots, slot);
                }
            }
            default -> throw new IllegalStateException(e.kind().toString());
        }
    }

    /** Frees the slots whose host-to-device copy has run; with {@code wait}, waits for the oldest one. */
    private void sweepLanded(Slots slots, boolean wait) {
        while (!slots.landing.isEmpty()) {
            int slot = slots.landing.peek();
            GpuEvent ev = slots.landed[slot];
            if (!wait && !ev.isComplete()) {
                break;
            }
            slots.landing.poll();
            slots.landed[slot] = null;
            try {
                ev.await();
            } finally {
                ev.close();
            }
            release(slots, slot);
            if (wait) {
                return; // one is enough to go on
            }
        }
    }

    /** The slot's piece has landed. */
    private static void release(Slots slots, int slot) {
        slots.piece[slot] = -1;
        slots.free.add(slot);
        slots.finished++;
    }

    /** Waits for every host-to-device copy of a failed batch, so that none lands after it is reported failed. */
    private void settleAll(Slots slots) {
        for (int slot : slots.landing) {
            GpuEvent ev = slots.landed[slot];
            try {
                ev.await();
            } catch (DeviceException e) {
                LOG.debug("rdma: a landing copy of a failed batch failed too: {}", e.getMessage());
            } finally {
                ev.close();
            }
        }
        slots.landing.clear();
    }

    /** Lets the stager finish the batches queued (failed by the caller first) and frees the landing buffers. */
    @Override
    public void close() {
        closed = true;
        batches.add(new Batch(-1, null, List.of(), null));
        try {
            stager.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
