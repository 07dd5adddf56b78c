package io.distserve.kv.rdma;

import com.ibm.disni.verbs.IbvCQ;
import com.ibm.disni.verbs.IbvCompChannel;
import com.ibm.disni.verbs.IbvContext;
import com.ibm.disni.verbs.IbvMr;
import com.ibm.disni.verbs.IbvPd;
import com.ibm.disni.verbs.IbvQP;
import com.ibm.disni.verbs.IbvQPInitAttr;
import com.ibm.disni.verbs.IbvSendWR;
import com.ibm.disni.verbs.IbvSge;
import com.ibm.disni.verbs.IbvWC;
import com.ibm.disni.verbs.RdmaCm;
import com.ibm.disni.verbs.RdmaCmEvent;
import com.ibm.disni.verbs.RdmaCmId;
import com.ibm.disni.verbs.RdmaConnParam;
import com.ibm.disni.verbs.RdmaEventChannel;
import com.ibm.disni.verbs.SVCPollCq;
import com.ibm.disni.verbs.SVCRegMr;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferTimeoutException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedList;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link RdmaVerbs} on DiSNI (libdisni over libibverbs and librdmacm). The serving side binds an RDMA CM id to
 * its address (which must be an RDMA interface's, so the id gets the device's context), allocates one protection
 * domain there, registers the pool and accepts connections on a thread of its own; it takes no part in the
 * transfers. The pulling side resolves the peer's address and route, creates a completion queue and a
 * reliable-connected queue pair on the same context, connects, posts READ chains and polls.
 *
 * <p>Not run on any machine of this project (none has an RDMA device, not even soft-RoCE): what runs in the tests
 * is everything above this class, against a fake.
 */
final class DisniVerbs implements RdmaVerbs {

    private static final Logger LOG = LoggerFactory.getLogger(DisniVerbs.class);
    /** Outstanding RDMA READs per queue pair (ConnectX: max_qp_rd_atom 16). */
    private static final byte READ_DEPTH = 16;

    private RdmaEventChannel listenChannel;
    private RdmaCmId listenId;
    private IbvContext context;
    private IbvPd pd;
    private static final int ACCESS = IbvMr.IBV_ACCESS_LOCAL_WRITE | IbvMr.IBV_ACCESS_REMOTE_READ;

    private final List<DisniRegistered> mrs = new ArrayList<>();
    private Thread acceptor;
    private volatile boolean closed;

    @Override
    public synchronized int listen(String host, int port) throws TransferException {
        try {
            listenChannel = RdmaEventChannel.createEventChannel();
            listenId = listenChannel.createId(RdmaCm.RDMA_PS_TCP);
            listenId.bindAddr(new InetSocketAddress(host, port));
            context = listenId.getVerbs();
            if (context == null) {
                throw new TransferException("no RDMA CM address: " + host + " is not the IP of an RDMA interface "
                        + "(bind the engine, --server-name, to the RDMA NIC's address)");
            }
            pd = context.allocPd();
            listenId.listen(128);
            int bound = ((InetSocketAddress) listenId.getSource()).getPort();
            acceptor = new Thread(this::acceptLoop, "rdma-cm-accept-" + bound);
            acceptor.setDaemon(true);
            acceptor.start();
            return bound;
        } catch (IOException e) {
            throw e instanceof TransferException te ? te
                    : new TransferException("rdma: listening on " + host + ":" + port + " failed: " + e, e);
        }
    }

    @Override
    public Registered registerHost(ByteBuffer buffer) throws TransferException {
        if (!buffer.isDirect()) {
            throw new IllegalArgumentException("only direct buffers can be registered");
        }
        return register("host buffer of " + buffer.capacity() + " bytes", p -> p.regMr(buffer, ACCESS));
    }

    @Override
    public Registered registerDevice(long deviceAddress, int length) throws TransferException {
        if (length < 1) {
            throw new IllegalArgumentException("length must be positive: " + length);
        }
        return register("device memory at 0x" + Long.toHexString(deviceAddress) + " (" + length + " bytes)",
                p -> p.regMr(deviceAddress, length, ACCESS));
    }

    private interface RegMr {
        SVCRegMr call(IbvPd pd) throws IOException;
    }

    private synchronized Registered register(String what, RegMr regMr) throws TransferException {
        if (pd == null || closed) {
            throw new IllegalStateException("listen before registering memory: the protection domain lives on the "
                    + "CM id's device");
        }
        IbvMr mr;
        try {
            mr = regMr.call(pd).execute().free().getMr();
        } catch (IOException e) {
            throw new TransferException("rdma: ibv_reg_mr of " + what + " failed: " + e, e);
        }
        DisniRegistered r = new DisniRegistered(mr);
        mrs.add(r);
        return r;
    }

    /** One memory region; deregistered by its owner, or by {@link #close()} if the owner did not. */
    private final class DisniRegistered implements Registered {
        private final IbvMr mr;
        private final Segment segment;
        private boolean deregistered;

        DisniRegistered(IbvMr mr) {
            this.mr = mr;
            this.segment = new Segment(mr.getAddr(), mr.getLkey(), mr.getRkey());
        }

        @Override
        public Segment segment() {
            return segment;
        }

        @Override
        public void close() {
            synchronized (DisniVerbs.this) {
                if (deregistered) {
                    return;
                }
                deregistered = true;
                mrs.remove(this);
            }
            try {
                mr.deregMr().execute().free();
            } catch (IOException e) {
                LOG.warn("rdma: ibv_dereg_mr failed: {}", e.toString());
            }
        }
    }

    /** The serving side: accept every connection request with a queue pair of its own (READs need no CPU here). */
    private void acceptLoop() {
        while (!closed) {
            try {
                RdmaCmEvent event = listenChannel.getCmEvent(200);
                if (event == null) {
                    continue;
                }
                int type = event.getEvent();
                RdmaCmId conn = event.getConnIdPriv();
                event.ackEvent();
                if (type == RdmaCmEvent.EventType.RDMA_CM_EVENT_CONNECT_REQUEST.ordinal()) {
                    IbvCompChannel channel = context.createCompChannel();
                    IbvCQ cq = context.createCQ(channel, 16, 0);
                    conn.createQP(pd, qpAttr(cq, 1));
                    RdmaConnParam param = new RdmaConnParam();
                    param.setResponder_resources(READ_DEPTH);
                    param.setInitiator_depth(READ_DEPTH);
                    conn.accept(param);
                } else if (type == RdmaCmEvent.EventType.RDMA_CM_EVENT_DISCONNECTED.ordinal()) {
                    conn.destroyQP();
                    conn.destroyId();
                }
            } catch (IOException e) {
                if (!closed) {
                    LOG.warn("rdma: accepting a connection failed: {}", e.toString());
                }
            }
        }
    }

    private static IbvQPInitAttr qpAttr(IbvCQ cq, int sendDepth) {
        IbvQPInitAttr attr = new IbvQPInitAttr();
        attr.cap().setMax_send_wr(sendDepth);
        attr.cap().setMax_recv_wr(1);
        attr.cap().setMax_send_sge(1);
        attr.cap().setMax_recv_sge(1);
        attr.setQp_type(IbvQP.IBV_QPT_RC);
        attr.setSend_cq(cq);
        attr.setRecv_cq(cq);
        return attr;
    }

    @Override
    public QueuePair connect(String host, int port, int sendDepth, Duration timeout) throws TransferException {
        int ms = (int) Math.max(1, Math.min(Integer.MAX_VALUE, timeout.toMillis()));
        String peer = host + ":" + port;
        RdmaEventChannel channel = null;
        RdmaCmId id = null;
        try {
            channel = RdmaEventChannel.createEventChannel();
            id = channel.createId(RdmaCm.RDMA_PS_TCP);
            id.resolveAddr(null, new InetSocketAddress(host, port), ms);
            expect(channel, RdmaCmEvent.EventType.RDMA_CM_EVENT_ADDR_RESOLVED, ms, peer);
            id.resolveRoute(ms);
            expect(channel, RdmaCmEvent.EventType.RDMA_CM_EVENT_ROUTE_RESOLVED, ms, peer);
            IbvPd localPd;
            synchronized (this) {
                localPd = pd;
            }
            if (localPd == null || id.getVerbs() == null || id.getVerbs().getCmd_fd() != context.getCmd_fd()) {
                throw new TransferException("rdma: the route to " + peer + " leaves through another RDMA device "
                        + "than the one this engine's pool is registered on");
            }
            IbvCompChannel comp = context.createCompChannel();
            IbvCQ cq = context.createCQ(comp, sendDepth, 0);
            IbvQP qp = id.createQP(localPd, qpAttr(cq, sendDepth));
            RdmaConnParam param = new RdmaConnParam();
            param.setInitiator_depth(READ_DEPTH);
            param.setResponder_resources(READ_DEPTH);
            param.setRetry_count((byte) 7);
            id.connect(param);
            expect(channel, RdmaCmEvent.EventType.RDMA_CM_EVENT_ESTABLISHED, ms, peer);
            return new DisniQueuePair(channel, id, qp, cq, peer, sendDepth);
        } catch (IOException e) {
            if (id != null) {
                id.close();
            }
            if (channel != null) {
                channel.close();
            }
            throw e instanceof TransferException te ? te
                    : new TransferException("rdma: connecting to " + peer + " failed: " + e, e);
        }
    }

    private static void expect(RdmaEventChannel channel, RdmaCmEvent.EventType want, int ms, String peer)
            throws IOException {
        RdmaCmEvent event = channel.getCmEvent(ms);
        if (event == null) {
            throw new TransferTimeoutException("rdma: no " + want + " from " + peer + " in " + ms + " ms");
        }
        int got = event.getEvent();
        event.ackEvent();
        if (got != want.ordinal()) {
            throw new TransferException("rdma: " + peer + " answered " + RdmaCmEvent.EventType.values()[got]
                    + " where " + want + " was due");
        }
    }

    /** One pulling queue pair: READ chains in, completions out. Used by its connection's poller thread. */
    private static final class DisniQueuePair implements QueuePair {
        private final RdmaEventChannel channel;
        private final RdmaCmId id;
        private final IbvQP qp;
        private final IbvCQ cq;
        private final String peer;
        private final IbvWC[] wcs = new IbvWC[32];
        private final SVCPollCq poll;
        private final int depth;
        private volatile boolean closed;

        DisniQueuePair(RdmaEventChannel channel, RdmaCmId id, IbvQP qp, IbvCQ cq, String peer, int depth)
                throws IOException {
            this.depth = depth;
            this.channel = channel;
            this.id = id;
            this.qp = qp;
            this.cq = cq;
            this.peer = peer;
            for (int i = 0; i < wcs.length; i++) {
                wcs[i] = new IbvWC();
            }
            this.poll = cq.poll(wcs, wcs.length);
        }

        @Override
        public void post(List<ReadWorkRequest> chain) throws TransferException {
            if (chain.size() > depth) {
                throw new TransferException("a chain of " + chain.size() + " READs exceeds the send queue ("
                        + depth + ")");
            }
            List<IbvSendWR> wrs = new ArrayList<>(chain.size());
            for (ReadWorkRequest r : chain) {
                IbvSge sge = new IbvSge();
                sge.setAddr(r.localAddress());
                sge.setLength(r.length());
                sge.setLkey(r.lkey());
                LinkedList<IbvSge> sges = new LinkedList<>();
                sges.add(sge);
                IbvSendWR wr = new IbvSendWR();
                wr.setWr_id(r.wrId());
                wr.setSg_list(sges);
                wr.setOpcode(IbvSendWR.IBV_WR_RDMA_READ);
                wr.setSend_flags(r.signaled() ? IbvSendWR.IBV_SEND_SIGNALED : 0);
                wr.getRdma().setRemote_addr(r.remoteAddress());
                wr.getRdma().setRkey(r.rkey());
                wrs.add(wr);
            }
            try {
                qp.postSend(wrs, null).execute().free();
            } catch (IOException e) {
                throw new TransferException("rdma: ibv_post_send to " + peer + " failed: " + e, e);
            }
        }

        @Override
        public List<Completion> poll(Duration timeout) throws TransferException {
            long deadline = System.nanoTime() + timeout.toNanos();
            List<Completion> out = new ArrayList<>();
            while (!closed) {
                int n;
                try {
                    n = poll.execute().getPolls();
                } catch (IOException e) {
                    throw new TransferException("rdma: ibv_poll_cq on the queue pair to " + peer + " failed: " + e, e);
                }
                for (int i = 0; i < n; i++) {
                    boolean ok = wcs[i].getStatus() == 0; // IBV_WC_SUCCESS
                    out.add(new Completion(wcs[i].getWr_id(), ok, ok ? null
                            : "work completion status " + wcs[i].getStatus() + " (vendor error "
                            + wcs[i].getVendor_err() + ")"));
                }
                if (!out.isEmpty() || System.nanoTime() - deadline > 0) {
                    return out;
                }
                LockSupport.parkNanos(20_000); // busy enough for microsecond completions, not a spinning core
            }
            return out;
        }

        @Override
        public void close() {
            if (closed) {
                return;
            }
            closed = true;
            try {
                id.disconnect(); // the queue pair goes to the error state: outstanding READs are flushed
                id.destroyQP();
                cq.destroyCQ();
                id.destroyId();
                channel.destroyEventChannel();
            } catch (IOException e) {
                LOG.debug("rdma: tearing down the queue pair to {}: {}", peer, e.toString());
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        Thread t = acceptor;
        if (t != null) {
            try {
                t.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        try {
            for (DisniRegistered mr : List.copyOf(mrs)) {
                mr.close();
            }
            if (pd != null) {
                pd.deallocPd();
            }
            if (listenId != null) {
                listenId.destroyId();
            }
            if (listenChannel != null) {
                listenChannel.destroyEventChannel();
            }
        } catch (Exception e) {
            LOG.debug("rdma: teardown: {}", e.toString());
        }
    }
}
