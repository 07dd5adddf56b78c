package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.Tokens;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransportOptions;
import java.io.IOException;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The {@code tcp} transport: works everywhere, one-sided reads over plain sockets, out of and into host memory or
 * GPU memory (a {@link DeviceRegion}, staged through pinned buffers). See kv-transfer/README.md for the wire protocol
 * and the threading model. Threads are named {@code kv-tcp-...}; {@link #close()} joins all of them.
 */
public final class TcpTransport implements KvTransport {

    public static final String NAME = "tcp";

    private final TransportOptions options;
    private final String token;
    private final Set<TcpConnection> connections = ConcurrentHashMap.newKeySet();
    private final Object lock = new Object();
    private MemoryRegion region; // guarded by lock
    private TcpServer server; // guarded by lock
    private EndpointInfo endpoint; // guarded by lock
    private boolean closed; // guarded by lock

    public TcpTransport(TransportOptions options) {
        this.options = options;
        this.token = Tokens.newToken(new SecureRandom());
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public void register(MemoryRegion region) {
        if (!region.isHostAccessible() && !(region instanceof DeviceRegion)) {
            throw new IllegalArgumentException("tcp serves host memory or a DeviceRegion; " + region + " is neither");
        }
        StagingOptions.from(options); // a bad staging setting fails here, not in a serving thread
        synchronized (lock) {
            checkOpen();
            if (this.region != null) {
                throw new IllegalStateException("a region is already registered");
            }
            this.region = region;
        }
    }

    @Override
    public void start() throws TransferException {
        synchronized (lock) {
            checkOpen();
            if (region == null) {
                throw new IllegalStateException("register a region before start()");
            }
            if (server != null) {
                throw new IllegalStateException("already started");
            }
            TcpServer s = new TcpServer(region, Tokens.bytes(token), options);
            try {
                s.start();
            } catch (IOException e) {
                s.close();
                throw new TransferException("cannot listen on " + options.bindHost() + ":" + options.port() + ": " + e,
                        e);
            }
            server = s;
            endpoint = new EndpointInfo(NAME, options.effectiveAdvertisedHost(), s.port(), region.size(),
                    region.layout().segmentSizes(), token, Map.of());
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

    @Override
    public Connection connect(EndpointInfo remote, Duration timeout) throws TransferException {
        if (!NAME.equals(remote.transport())) {
            throw new IllegalArgumentException("endpoint " + remote + " is not a tcp endpoint");
        }
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("connect timeout must be positive");
        }
        MemoryRegion local;
        synchronized (lock) {
            checkOpen();
            if (region == null) {
                throw new IllegalStateException("register a region before connect()");
            }
            local = region;
        }
        TcpConnection c = new TcpConnection(remote, local, options, timeout, "kv-tcp-read-", connections::remove);
        c.open();
        connections.add(c);
        synchronized (lock) {
            if (closed) { // close() ran while we were dialing: don't leave this one behind
                c.close();
                throw new IllegalStateException("transport closed");
            }
        }
        return c;
    }

    /** Drops all peer sockets on the serving side but keeps listening (fault injection for tests). */
    void dropServedSessions() {
        TcpServer s;
        synchronized (lock) {
            s = server;
        }
        if (s != null) {
            s.dropSessions();
        }
    }

    /** Live peer sockets on the serving side. */
    int servedSessionCount() {
        synchronized (lock) {
            return server == null ? 0 : server.sessionCount();
        }
    }

    @Override
    public void close() {
        TcpServer s;
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            s = server;
        }
        for (TcpConnection c : new ArrayList<>(connections)) {
            c.close();
        }
        if (s != null) {
            s.close();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("transport closed");
        }
    }

    List<TcpConnection> openConnections() {
        return List.copyOf(connections);
    }
}
