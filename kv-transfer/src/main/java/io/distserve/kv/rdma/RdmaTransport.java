package io.distserve.kv.rdma;

import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadPlanner;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransportOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * KV migration by one-sided RDMA READs: the prefill engine registers its pool once and publishes the region's
 * address and key with its RDMA CM address; a decode engine connects a queue pair and pulls each migration as one
 * chain of READs the prefill engine's CPU never sees. Settings (the {@code extra} of {@link TransportOptions}):
 * {@code rdma.linkType} RoCE|IB (the proxy's --link-type), {@code rdma.disableGdr} (--disable-gdr: stage device
 * memory through pinned host memory), {@code rdma.maxMessageBytes} (the NIC's max_msg_sz, 1 GiB),
 * {@code rdma.signalEvery} (64: half a 128-entry send queue).
 */
public final class RdmaTransport implements KvTransport {

    public static final String NAME = "rdma";
    private static final Logger LOG = LoggerFactory.getLogger(RdmaTransport.class);

    private final RdmaVerbs verbs;
    private final TransportOptions options;
    private final String linkType;
    private final ReadPlanner readPlanner;
    private final WorkRequestPlanner wrPlanner;
    private final List<RdmaConnection> connections = new ArrayList<>();
    private MemoryRegion region;
    private RdmaVerbs.Registration registration;
    private EndpointInfo endpoint;
    private boolean closed;

    public RdmaTransport(RdmaVerbs verbs, TransportOptions options) {
        this.verbs = verbs;
        this.options = options;
        Map<String, String> extra = options.extra();
        this.linkType = extra.getOrDefault("rdma.linkType", "RoCE");
        if (!linkType.equals("RoCE") && !linkType.equals("IB")) {
            throw new IllegalArgumentException("rdma.linkType must be RoCE or IB, got '" + linkType + "'");
        }
        long maxMessage = Long.parseLong(extra.getOrDefault("rdma.maxMessageBytes", Long.toString(1L << 30)));
        int signalEvery = Integer.parseInt(extra.getOrDefault("rdma.signalEvery", "64"));
        // The runs a READ chain is made of: ReadPlanner coalesces adjacent blocks up to this size (the NIC splits
        // nothing itself: WorkRequestPlanner cuts at max_msg_sz).
        this.readPlanner = new ReadPlanner(Math.min(Integer.MAX_VALUE, Math.max(1, maxMessage)));
        this.wrPlanner = new WorkRequestPlanner(maxMessage, signalEvery);
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public synchronized void register(MemoryRegion region) {
        if (this.region != null) {
            throw new IllegalStateException("a region is already registered");
        }
        this.region = region;
    }

    @Override
    public synchronized void start() throws TransferException {
        if (region == null) {
            throw new IllegalStateException("register a region before start");
        }
        boolean disableGdr = Boolean.parseBoolean(options.extra().getOrDefault("rdma.disableGdr", "false"));
        if (!region.isHostAccessible() && disableGdr) {
            throw new TransferException("--disable-gdr: device memory would need staging through pinned host "
                    + "memory, which the rdma transport does not do yet; use tcp for this pool");
        }
        // listen first: the CM id bound to an RDMA interface's address is what gives the device (and its protection
        // domain) the pool is registered with
        int port = verbs.listen(options.bindHost(), options.port());
        registration = verbs.register(region);
        if (registration.segments().size() != region.layout().segmentCount()) {
            throw new TransferException("the verbs registered " + registration.segments().size() + " regions for "
                    + region.layout().segmentCount() + " segments");
        }
        RdmaEndpoint published = new RdmaEndpoint(registration.segments(), linkType, registration.gpuDirect());
        endpoint = new EndpointInfo(NAME, options.effectiveAdvertisedHost(), port, region.size(),
                region.layout().segmentSizes(), "", published.attributes());
        LOG.info("rdma: serving {} bytes on {} ({}, {})", region.size(), endpoint.address(), linkType,
                registration.gpuDirect() ? "GPUDirect" : "host memory");
    }

    @Override
    public synchronized EndpointInfo localEndpoint() {
        if (endpoint == null) {
            throw new IllegalStateException("not started");
        }
        return endpoint;
    }

    @Override
    public Connection connect(EndpointInfo remote, Duration timeout) throws TransferException {
        RdmaVerbs.Registration reg;
        synchronized (this) {
            if (closed || registration == null) {
                throw new IllegalStateException(closed ? "transport closed" : "not started");
            }
            reg = registration;
        }
        RdmaConnection c;
        try {
            c = new RdmaConnection(verbs, remote, reg, region.layout(), readPlanner, wrPlanner, timeout);
        } catch (IllegalArgumentException e) {
            throw new TransferException("refused rdma endpoint " + remote.address() + ": " + e.getMessage(), e);
        }
        synchronized (this) {
            connections.add(c);
        }
        return c;
    }

    @Override
    public void close() {
        List<RdmaConnection> all;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            all = List.copyOf(connections);
        }
        all.forEach(RdmaConnection::close);
        verbs.close();
    }
}
