package io.distserve.kv.rdma;

import io.distserve.kv.device.HostGpuDevice;
import io.distserve.kv.transfer.TransferException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A pretend RDMA network for tests: every {@link Verbs} registers buffers under fake addresses and keys (device
 * memory under the address the device double gave out, resolved through it, as GPUDirect would); a queue pair
 * executes a posted READ at once by copying between the registered buffers and queues the signalled requests'
 * completions, in order or shuffled, and can be told to fail a request, to hang, or to hold its completions until
 * released. Checks what a NIC would refuse: a wrong key, an address outside the region, a deregistered region,
 * more requests outstanding than the send queue holds.
 */
final class FakeFabric {

    /** What the next READs do (the fabric's default, or one queue pair's). */
    enum Mode { NORMAL, SHUFFLE, FAIL_NEXT, HANG, HOLD }

    private record Mr(ByteBuffer buffer, long address, long size) {
    }

    private final Map<Integer, Mr> byKey = new ConcurrentHashMap<>();
    private final Map<Integer, Verbs> listeners = new ConcurrentHashMap<>();
    private final AtomicInteger nextKey = new AtomicInteger(100);
    private final AtomicInteger nextPort = new AtomicInteger(7000);
    volatile Mode mode = Mode.NORMAL;
    /** When set, ibv_reg_mr on a device pointer fails (a driver without peer memory support). */
    volatile boolean refuseDeviceMemory;
    final AtomicInteger connects = new AtomicInteger();
    final AtomicInteger maxOutstanding = new AtomicInteger();
    final List<Integer> postedChains = Collections.synchronizedList(new ArrayList<>());
    /** Every queue pair made, in order. */
    final List<FakeQp> qps = new CopyOnWriteArrayList<>();

    Verbs verbs(long baseAddress) {
        return new Verbs(baseAddress, null);
    }

    /** Verbs of an engine whose GPU is {@code device}: it registers device memory through GPUDirect. */
    Verbs verbs(long baseAddress, HostGpuDevice device) {
        return new Verbs(baseAddress, device);
    }

    /** Memory regions registered and not yet deregistered, over the whole fabric. */
    int liveRegistrations() {
        return byKey.size();
    }

    int liveQueuePairs() {
        return (int) qps.stream().filter(q -> !q.closed).count();
    }

    final class Verbs implements RdmaVerbs {
        private final HostGpuDevice device;
        private final AtomicLong nextAddress;
        private int port;

        Verbs(long base, HostGpuDevice device) {
            this.device = device;
            this.nextAddress = new AtomicLong(base);
        }

        @Override
        public Registered registerHost(ByteBuffer buffer) {
            if (!buffer.isDirect()) {
                throw new AssertionError("registering a heap buffer");
            }
            long size = buffer.capacity();
            long addr = nextAddress.getAndAdd(size + 4096); // gaps between regions, as separate registrations have
            return register(new Mr(buffer.duplicate().clear(), addr, size));
        }

        @Override
        public Registered registerDevice(long deviceAddress, int length) throws TransferException {
            if (device == null || refuseDeviceMemory) {
                throw new TransferException("fake: ibv_reg_mr on a device pointer failed (EFAULT: no peer memory "
                        + "client)");
            }
            return register(new Mr(device.deviceBytes(deviceAddress, length), deviceAddress, length));
        }

        private Registered register(Mr mr) {
            int key = nextKey.getAndIncrement();
            byKey.put(key, mr);
            Segment segment = new Segment(mr.address(), key, key);
            return new Registered() {
                @Override
                public Segment segment() {
                    return segment;
                }

                @Override
                public void close() {
                    byKey.remove(key);
                }
            };
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
            FakeQp qp = new FakeQp(sendDepth);
            qps.add(qp);
            return qp;
        }

        @Override
        public void close() {
            listeners.remove(port);
        }
    }

    final class FakeQp implements RdmaVerbs.QueuePair {
        private final int depth;
        private final LinkedBlockingQueue<RdmaVerbs.Completion> cq = new LinkedBlockingQueue<>();
        private final List<RdmaVerbs.Completion> held = new ArrayList<>();
        private final List<Long> outstanding = new ArrayList<>();
        private final Random random = new Random(3);
        /** This queue pair's mode; null: the fabric's. */
        volatile Mode mode;
        final AtomicInteger postedRequests = new AtomicInteger();
        /** Counts down each time the completion thread comes back to poll: it has handled what it got before. */
        volatile CountDownLatch polled = new CountDownLatch(0);
        volatile boolean closed;

        FakeQp(int depth) {
            this.depth = depth;
        }

        private Mode mode() {
            Mode m = mode;
            return m == null ? FakeFabric.this.mode : m;
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
            postedRequests.addAndGet(chain.size());
            for (ReadWorkRequest r : chain) {
                outstanding.add(r.wrId());
            }
            maxOutstanding.accumulateAndGet(outstanding.size(), Math::max);
            Mode m = mode();
            if (m == Mode.HANG) {
                return; // nothing completes; nothing lands once closed
            }
            List<RdmaVerbs.Completion> done = new ArrayList<>();
            for (ReadWorkRequest r : chain) {
                if (m == Mode.FAIL_NEXT) {
                    if (mode != null) {
                        mode = Mode.NORMAL;
                    } else {
                        FakeFabric.this.mode = Mode.NORMAL;
                    }
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
            if (m == Mode.HOLD) {
                held.addAll(done);
            } else {
                cq.addAll(done);
            }
        }

        /** Delivers the completions held so far. */
        synchronized void release() {
            cq.addAll(held);
            held.clear();
        }

        private void copy(ReadWorkRequest r) {
            Mr src = byKey.get(r.rkey());
            Mr dst = byKey.get(r.lkey());
            if (src == null || dst == null) {
                throw new AssertionError("unknown or deregistered key in " + r);
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
            polled.countDown();
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
            held.clear();
        }
    }
}
