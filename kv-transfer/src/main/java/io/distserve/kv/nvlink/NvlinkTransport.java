package io.distserve.kv.nvlink;

import io.distserve.kv.device.DeviceException;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuDevice;
import io.distserve.kv.device.ImportedMemory;
import io.distserve.kv.device.IpcExport;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.EndpointRefusedException;
import io.distserve.kv.transfer.HostIdentity;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransportOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code nvlink} transport: KV blocks copied GPU to GPU between engines of one host, over NVLink between two
 * GPUs or inside one GPU's memory when both engines share it. The serving engine exports its pool once as a CUDA IPC
 * handle (in its endpoint, hex); a pulling engine maps it once per peer and reads each migration with one gather
 * launch ({@link NvlinkConnection}). Nothing runs on the serving side per transfer: no thread, no socket.
 *
 * <p>Refused, with {@link EndpointRefusedException}: a handle of another host (IPC cannot cross hosts), of this very
 * process (CUDA cannot open its own handles), one the driver does not open, or one whose allocation is smaller than
 * the region it claims. Threads: one, {@code kv-nvlink-complete-...}, joined by {@link #close()}.
 */
public final class NvlinkTransport implements KvTransport {

    public static final String NAME = "nvlink";

    private static final Logger log = LoggerFactory.getLogger(NvlinkTransport.class);

    private final TransportOptions options;
    private final String hostId;
    private final long pid;
    private final Set<NvlinkConnection> connections = ConcurrentHashMap.newKeySet();
    private final Object lock = new Object();
    private DeviceRegion region; // guarded by lock
    private EndpointInfo endpoint; // guarded by lock
    private GatherCompleter completer; // guarded by lock
    private boolean closed; // guarded by lock

    public NvlinkTransport(TransportOptions options) {
        this(options, HostIdentity.local(), ProcessHandle.current().pid());
    }

    /**
     * With the host and process identity given: for tests that run two engines in one JVM over a device double, as
     * if they were two processes of one host. Real engines use {@link #NvlinkTransport(TransportOptions)}.
     */
    public NvlinkTransport(TransportOptions options, String hostId, long pid) {
        this.options = options;
        this.hostId = hostId;
        this.pid = pid;
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public void register(MemoryRegion region) {
        if (!(region instanceof DeviceRegion d)) {
            throw new IllegalArgumentException("nvlink moves GPU memory; " + region + " is not a DeviceRegion");
        }
        synchronized (lock) {
            checkOpen();
            if (this.region != null) {
                throw new IllegalStateException("a region is already registered");
            }
            this.region = d;
        }
    }

    @Override
    public void start() throws TransferException {
        synchronized (lock) {
            checkOpen();
            if (region == null) {
                throw new IllegalStateException("register a region before start()");
            }
            if (endpoint != null) {
                throw new IllegalStateException("already started");
            }
            GpuDevice device = region.device();
            IpcExport export;
            try {
                device.bind();
                export = device.exportIpc(region.memory());
            } catch (DeviceException e) {
                throw new TransferException("cannot export the KV pool for CUDA IPC: " + e.getMessage(), e);
            }
            NvlinkEndpoint ours = NvlinkEndpoint.of(export, device.pciBusId(), hostId, pid);
            endpoint = new EndpointInfo(NAME, options.effectiveAdvertisedHost(), 0, region.size(),
                    region.layout().segmentSizes(), "", ours.attributes());
            completer = new GatherCompleter(device, "kv-nvlink-complete-" + pid + "-" + Integer.toHexString(System.identityHashCode(this)));
            log.info("kv nvlink transport exporting {} bytes on GPU {} (host {}, pid {})", region.size(),
                    device.pciBusId(), hostId, pid);
        }
    }

    @Override
    public EndpointInfo localEndpoint() {
        synchronized (lock) {
            if (endpoint == null) {
                throw new IllegalStateException("not started");
            }
            return endpoint;
        }
    }

    /**
     * Maps the peer's pool. The handle is opened here, once; a read never opens anything.
     *
     * @throws IllegalArgumentException a malformed endpoint (names the attribute)
     * @throws EndpointRefusedException a well-formed one this process cannot use (says why)
     */
    @Override
    public Connection connect(EndpointInfo remote, Duration timeout) throws TransferException {
        NvlinkEndpoint peer = NvlinkEndpoint.parse(remote);
        DeviceRegion local;
        GatherCompleter c;
        synchronized (lock) {
            checkOpen();
            if (region == null || completer == null) {
                throw new IllegalStateException("start() before connect()");
            }
            local = region;
            c = completer;
        }
        if (!peer.hostId().equals(hostId)) {
            throw new EndpointRefusedException("the nvlink endpoint is of host " + peer.hostId() + " and this engine "
                    + "runs on " + hostId + ": CUDA IPC works only between processes of one host (use tcp)");
        }
        if (peer.pid() == pid) {
            throw new EndpointRefusedException("the nvlink endpoint was exported by this very process (pid " + pid
                    + "): CUDA cannot open a process's own IPC handles");
        }
        GpuDevice device = local.device();
        ImportedMemory mapped;
        try {
            device.bind();
            mapped = device.openIpc(peer.handle());
        } catch (DeviceException e) {
            throw new EndpointRefusedException("cannot open the CUDA IPC handle of GPU " + peer.pciBusId() + " (pid "
                    + peer.pid() + ") on GPU " + device.pciBusId() + ": " + e.getMessage(), e);
        }
        if (peer.offset() > mapped.size() || remote.regionSize() > mapped.size() - peer.offset()) {
            mapped.close();
            throw new EndpointRefusedException("the nvlink endpoint claims " + remote.regionSize() + " bytes at offset "
                    + peer.offset() + " but its allocation holds " + mapped.size());
        }
        NvlinkConnection conn;
        try {
            conn = new NvlinkConnection(remote, peer, mapped, local, device.newStream(), c, connections::remove);
        } catch (RuntimeException e) {
            mapped.close();
            throw new TransferException("cannot set up a gather stream: " + e.getMessage(), e);
        }
        connections.add(conn);
        synchronized (lock) {
            if (closed) { // close() ran meanwhile: don't leave this one behind
                conn.close();
                throw new IllegalStateException("transport closed");
            }
        }
        log.debug("nvlink: mapped {} bytes of {} on {}", remote.regionSize(), peer, device.pciBusId());
        return conn;
    }

    @Override
    public void close() {
        GatherCompleter c;
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            c = completer;
        }
        for (NvlinkConnection conn : new ArrayList<>(connections)) {
            conn.close();
        }
        if (c != null) {
            c.close();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("transport closed");
        }
    }
}
