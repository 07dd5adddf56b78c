package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceException;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.Tokens;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransportOptions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * KV migration by one-sided RDMA READs. Every engine registers its pool once: host memory as it is, GPU memory
 * through GPUDirect where the peer-memory module is loaded (the NIC then reads and writes the GPU's memory), else
 * not at all: a GPU pool without GPUDirect is served through a staging channel (the peer asks for runs to be copied
 * into pinned slots it then READs) and landed through pinned buffers and host-to-device copies. The endpoint
 * carries the RDMA CM address, the pool's regions (address, rkey) where it is registered, the staging channel's
 * port where it has one, and the layout. Settings: {@link RdmaOptions}.
 */
public final class RdmaTransport implements KvTransport {

    public static final String NAME = "rdma";
    private static final Logger LOG = LoggerFactory.getLogger(RdmaTransport.class);

    private final RdmaVerbs verbs;
    private final TransportOptions transportOptions;
    private final RdmaOptions options;
    private final GpuDirectSupport gpuDirect;
    private final String token = Tokens.newToken(new SecureRandom());
    private final List<RdmaConnection> connections = new ArrayList<>();
    private MemoryRegion region;
    private PoolRegistration pool; // null: a GPU pool without GPUDirect
    private StagingServer staging; // null: a host pool
    private EndpointInfo endpoint;
    private boolean closed;

    public RdmaTransport(RdmaVerbs verbs, TransportOptions options) {
        this(verbs, options, GpuDirectSupport.host());
    }

    RdmaTransport(RdmaVerbs verbs, TransportOptions options, GpuDirectSupport gpuDirect) {
        this.verbs = verbs;
        this.transportOptions = options;
        this.options = RdmaOptions.from(options);
        this.gpuDirect = gpuDirect;
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public synchronized void register(MemoryRegion region) {
        if (!region.isHostAccessible() && !(region instanceof DeviceRegion)) {
            throw new IllegalArgumentException("rdma serves host memory or a DeviceRegion; " + region + " is neither");
        }
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
        if (endpoint != null) {
            throw new IllegalStateException("already started");
        }
        // listen first: the CM id bound to an RDMA interface's address is what gives the device (and its protection
        // domain) the pool is registered with
        int port = verbs.listen(transportOptions.bindHost(), transportOptions.port());
        String mode;
        try {
            if (region instanceof DeviceRegion device) {
                mode = registerDevicePool(device);
            } else {
                pool = PoolRegistration.host(verbs, region, options.maxMrBytes());
                mode = "host memory in " + pool.layout().segmentCount() + " memory region(s)";
            }
            List<RdmaVerbs.Segment> segments = pool == null ? List.of() : pool.segments();
            RdmaEndpoint published = new RdmaEndpoint(segments, pool == null ? 0 : pool.maxMrBytes(),
                    staging == null ? 0 : staging.port(), options.linkType(), pool != null && pool.gpuDirect(),
                    false);
            endpoint = new EndpointInfo(NAME, transportOptions.effectiveAdvertisedHost(), port, region.size(),
                    region.layout().segmentSizes(), staging == null ? "" : token, published.attributes());
        } catch (TransferException | RuntimeException e) {
            releasePool();
            throw e;
        }
        LOG.info("rdma: KV pool of {} bytes on {} ({}): {}", region.size(), endpoint.address(), options.linkType(),
                mode);
    }

    /** GPUDirect where it can be had; else, or besides (for pairs under --disable-gdr), the staging channel. */
    private String registerDevicePool(DeviceRegion device) throws TransferException {
        String why = options.disableGdr() ? RdmaOptions.DISABLE_GDR + " is set (--disable-gdr)"
                : gpuDirect.missing().orElse(null);
        if (why == null) {
            try {
                pool = PoolRegistration.gpuDirect(verbs, device, options.maxMrBytes());
            } catch (TransferException | DeviceException e) {
                why = "registering the device pointer failed: " + e.getMessage();
            }
        }
        staging = new StagingServer(new StagingServer.Settings(device, verbs, Tokens.bytes(token),
                options.stagingSlots(), options.stagingSlotBytes(), transportOptions.handshakeTimeout()),
                transportOptions.bindHost());
        if (pool != null) {
            return "gpudirect: GPU memory on " + device.device().pciBusId() + " registered as "
                    + pool.layout().segmentCount() + " memory region(s), peers READ it and READs land in it "
                    + "directly; staging channel on port " + staging.port() + " for pairs under --disable-gdr";
        }
        return "staged: GPU memory on " + device.device().pciBusId() + " is not registered (" + why + "); peers "
                + "READ it from pinned slots it is staged into on request (staging channel on port " + staging.port()
                + ", " + options.stagingSlots() + " x " + options.stagingSlotBytes() + " bytes a peer), and READs "
                + "land in pinned buffers copied to the GPU";
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
        PoolRegistration own;
        synchronized (this) {
            if (closed || endpoint == null) {
                throw new IllegalStateException(closed ? "transport closed" : "not started");
            }
            own = pool;
        }
        RdmaEndpoint peer;
        StagedPipeline.Route route;
        try {
            peer = RdmaEndpoint.parse(remote);
            RegisteredLayout from = peer.direct()
                    ? new RegisteredLayout(PoolRegistration.pieces(remote.layout(), peer.mrBytes()), peer.segments())
                    : null;
            // GPUDirect on this side too, unless the pair is under --disable-gdr
            boolean landDirect = own != null && !(own.gpuDirect() && peer.disableGdr());
            RegisteredLayout into = landDirect ? new RegisteredLayout(own.layout(), own.segments()) : null;
            route = new StagedPipeline.Route(remote.layout(), from, region.layout(), into);
        } catch (IllegalArgumentException e) {
            throw new TransferException("refused rdma endpoint " + remote.address() + ": " + e.getMessage(), e);
        }
        DeviceRegion landingPool = null;
        PinnedSlots landing = null;
        if (route.landingStaged()) {
            landingPool = (DeviceRegion) region;
            landing = PinnedSlots.open(landingPool.device(), verbs, options.stagingSlots(),
                    options.stagingSlotBytes());
        }
        RdmaConnection c = new RdmaConnection(verbs, remote, peer, options, route, landingPool, landing, timeout);
        LOG.info("rdma: connected to {} over {} queue pair(s): reading {}, landing {}", remote.address(),
                options.queuePairs(), route.sourceStaged() ? "through its staging channel" : "its registered pool",
                route.landingStaged() ? "through pinned buffers and host-to-device copies" : "in this pool directly");
        synchronized (this) {
            if (!closed) {
                connections.add(c);
                return c;
            }
        }
        c.close();
        throw new IllegalStateException("transport closed");
    }

    /** Staging sessions open on the serving side (tests). */
    int stagingSessionCount() {
        StagingServer s;
        synchronized (this) {
            s = staging;
        }
        return s == null ? 0 : s.sessionCount();
    }

    /** Ends the serving side's staging sessions but keeps listening, as a peer sees a dying channel (tests). */
    void dropStagingSessions() {
        StagingServer s;
        synchronized (this) {
            s = staging;
        }
        if (s != null) {
            s.dropSessions();
        }
    }

    private void releasePool() {
        if (staging != null) {
            staging.close();
            staging = null;
        }
        if (pool != null) {
            pool.close();
            pool = null;
        }
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
        synchronized (this) {
            releasePool();
        }
        verbs.close();
    }
}
