package io.distserve.kv.rdma;

import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.RegionLayout;
import io.distserve.kv.transfer.TransferException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A pretend RDMA network for tests: every {@link Verbs} registers its pool's segments under fake addresses and
 * keys; a queue pair executes posted READs by copying between the registered buffers, completing the signalled
 * requests, in order or shuffled, and can be told to fail a request or to hang. Checks what a NIC would refuse: a
 * wrong key, an address outside the region, more requests outstanding than the send queue holds.
 */
final class FakeFabric {

    /** What the next READs do. */
    enum Mode { NORMAL, SHUFFLE, FAIL_NEXT, HANG }

    private record Mr(ByteBuffer buffer, long address, long size) {
    }

    private final Map<Integer, Mr> byKey = new ConcurrentHashMap<>();
    private final Map<Integer, Verbs> listeners = new ConcurrentHashMap<>();
    private final AtomicInteger nextKey = new AtomicInteger(100);
    private final AtomicInteger nextPort = new AtomicInteger(7000);
    volatile Mode mode = Mode.NORMAL;
    final AtomicInteger connects = new AtomicInteger();
    final AtomicInteger maxOutstanding = new AtomicInteger();
    final List<Integer> postedChains = Collections.synchronizedList(new ArrayList<>());

    Verbs verbs(long baseAddress) {
        return new Verbs(baseAddress);
    }

    final class Verbs implements RdmaVerbs {
        private final long base;
        private int port;

        Verbs(long base) {
            this.base = base;
        }

        @Override
        public Registration register(MemoryRegion region) {
            RegionLayout layout = region.layout();
            List<Segment> segs = new ArrayList<>();
            for (int s = 0; s < layout.segmentCount(); s++) {
                long start = layout.segmentStart(s);
                long size = layout.segmentSizes().get(s);
                int key = nextKey.getAndIncrement();
                long addr = base + start + s * 4096L; // gaps between segments, as separate registrations have
                byKey.put(key, new Mr(region.slice(start, (int) size), addr, size));
                segs.add(new Segment(addr, key, key));
            }
            return new Registration(segs, false);
        }

        @Override
        public int listen(String host, int port) {
            this.port = port == 0 ? nextPort.getAndIncrement() : port;
            listeners.put(this.port, this);
            return this.port;
        }

        @Override
        public QueuePair connect(String host, int port, int sendDepth, Duration timeout) throws TransferException {
            if (!listeners.containsKey(port)) {
                throw new TransferException("fake: nothing listens on " + host + ":" + port);
            }
            connects.incrementAndGet();
            return new FakeQp(sendDepth);
        }

        @Override
        public void close() {
            listeners.remove(port);
        }
    }

    private final class FakeQp implements RdmaVerbs.QueuePair {
        private final int depth;
        private final LinkedBlockingQueue<RdmaVerbs.Completion> cq = new LinkedBlockingQueue<>();
        private final List<Long> outstanding = new ArrayList<>();
        private final Random random = new Random(3);
        private volatile boolean closed;

        FakeQp(int depth) {
            this.depth = depth;
        }

        @Override
        public synchronized void post(List<ReadWorkRequest> chain) throws TransferException {
            if (closed) {
                throw new TransferException("fake: queue pair closed");
            }
            if (outstanding.size() + chain.size() > depth) {
                throw new AssertionError("send queue overflow: " + outstanding.size() + " outstanding + "
                        + chain.size() + " posted > depth " + depth);
            }
            postedChains.add(chain.size());
            for (ReadWorkRequest r : chain) {
                outstanding.add(r.wrId());
            }
            maxOutstanding.accumulateAndGet(outstanding.size(), Math::max);
            Mode m = mode;
            if (m == Mode.HANG) {
                return; // nothing completes; nothing lands once closed
            }
            List<RdmaVerbs.Completion> done = new ArrayList<>();
            for (ReadWorkRequest r : chain) {
                if (m == Mode.FAIL_NEXT) {
                    mode = Mode.NORMAL;
                    done.add(new RdmaVerbs.Completion(r.wrId(), false, "IBV_WC_REM_ACCESS_ERR (fake)"));
                    break;
                }
                copy(r);
                if (r.signaled()) {
                    done.add(new RdmaVerbs.Completion(r.wrId(), true, null));
                }
            }
            if (m == Mode.SHUFFLE) {
                Collections.shuffle(done, random);
            }
            cq.addAll(done);
        }

        private void copy(ReadWorkRequest r) {
            Mr src = byKey.get(r.rkey());
            Mr dst = byKey.get(r.lkey());
            if (src == null || dst == null) {
                throw new AssertionError("unknown key in " + r);
            }
            long so = r.remoteAddress() - src.address();
            long dOff = r.localAddress() - dst.address();
            if (so < 0 || so + r.length() > src.size() || dOff < 0 || dOff + r.length() > dst.size()) {
                throw new AssertionError("out of the registered region: " + r);
            }
            for (int i = 0; i < r.length(); i++) {
                dst.buffer().put((int) dOff + i, src.buffer().get((int) so + i));
            }
        }

        @Override
        public List<RdmaVerbs.Completion> poll(Duration timeout) throws TransferException {
            List<RdmaVerbs.Completion> out = new ArrayList<>();
            try {
                RdmaVerbs.Completion first = cq.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
                if (first != null) {
                    out.add(first);
                    cq.drainTo(out);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            synchronized (this) {
                for (RdmaVerbs.Completion c : out) { // a completion retires its request and those before it
                    if (c.ok()) {
                        outstanding.removeIf(id -> (id >>> 32) == (c.wrId() >>> 32) && (int) (long) id <= (int) c.wrId());
                    }
                }
            }
            if (closed && out.isEmpty()) {
                throw new TransferException("fake: queue pair closed");
            }
            return out;
        }

        @Override
        public synchronized void close() {
            closed = true;
            outstanding.clear();
        }
    }
}
