package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.TransferException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The serving side of staging: a tcp listener for {@link StagingProtocol}, a {@link StagingSession} thread per peer
 * ({@code kv-rdma-stage-<port>-<n>}). Closing ends every session (each frees its slots) and joins every thread.
 */
final class StagingServer implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(StagingServer.class);

    /** How a server stages: its pool, the verbs its slots are registered with, and the sizes of a session's ring. */
    record Settings(DeviceRegion region, RdmaVerbs verbs, byte[] token, int slots, int slotBytes,
                    Duration handshakeTimeout) {
    }

    private final Settings settings;
    private final ServerSocket listener;
    private final Map<StagingSession, Thread> sessions = new ConcurrentHashMap<>();
    private final AtomicInteger sessionNames = new AtomicInteger();
    private final Thread acceptor;
    private volatile boolean closed;

    StagingServer(Settings settings, String bindHost) throws TransferException {
        this.settings = settings;
        try {
            listener = new ServerSocket();
            listener.bind(new InetSocketAddress(bindHost, 0));
        } catch (IOException e) {
            throw new TransferException("rdma: cannot listen for staging requests on " + bindHost + ": " + e, e);
        }
        acceptor = new Thread(this::acceptLoop, "kv-rdma-stage-accept-" + port());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    int port() {
        return listener.getLocalPort();
    }

    int sessionCount() {
        return sessions.size();
    }

    /** Ends every session but keeps listening: what a peer sees when the serving side's channel dies (tests). */
    void dropSessions() {
        List.copyOf(sessions.keySet()).forEach(StagingSession::close);
    }

    private void acceptLoop() {
        while (!closed) {
            Socket s;
            try {
                s = listener.accept();
            } catch (IOException e) {
                if (!closed) {
                    LOG.warn("rdma staging: accept failed: {}", e.toString());
                }
                return;
            }
            StagingSession session = new StagingSession(s, settings.region(), settings.verbs(), settings.token(),
                    settings.slots(), settings.slotBytes(), settings.handshakeTimeout());
            Thread t = new Thread(() -> {
                try {
                    session.run();
                } finally {
                    sessions.remove(session);
                }
            }, "kv-rdma-stage-" + port() + "-" + sessionNames.incrementAndGet());
            t.setDaemon(true);
            sessions.put(session, t);
            if (closed) {
                session.close();
            }
            t.start();
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            listener.close();
        } catch (IOException e) {
            LOG.debug("closing the staging listener: {}", e.toString());
        }
        join(acceptor);
        List<Thread> threads = new ArrayList<>(sessions.values());
        List.copyOf(sessions.keySet()).forEach(StagingSession::close);
        threads.forEach(StagingServer::join);
    }

    private static void join(Thread t) {
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
