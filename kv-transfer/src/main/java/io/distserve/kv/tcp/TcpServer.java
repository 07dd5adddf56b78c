package io.distserve.kv.tcp;

import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransportOptions;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The serving (prefill) side: one acceptor thread, and one {@link ServingSession} thread per accepted socket. A
 * thread per socket keeps the serve loop a plain blocking read-request / write-response loop, which is the fastest
 * thing on loopback and trivially keeps responses in request order; sockets per engine are few (decode peers times
 * streams per connection).
 */
final class TcpServer implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(TcpServer.class);

    private final MemoryRegion region;
    private final byte[] token;
    private final TransportOptions options;
    private final Object lock = new Object();
    private final Set<ServingSession> sessions = new HashSet<>(); // guarded by lock
    private boolean closed; // guarded by lock
    private ServerSocketChannel server;
    private Thread acceptor;
    private int port;
    private long accepted;

    TcpServer(MemoryRegion region, byte[] token, TransportOptions options) {
        this.region = region;
        this.token = token.clone();
        this.options = options;
    }

    void start() throws IOException {
        server = ServerSocketChannel.open();
        if (options.socketBufferBytes() > 0) {
            // Set on the listener so accepted sockets negotiate a large window from the SYN on.
            server.setOption(StandardSocketOptions.SO_RCVBUF, options.socketBufferBytes());
        }
        server.setOption(StandardSocketOptions.SO_REUSEADDR, true);
        server.bind(new InetSocketAddress(options.bindHost(), options.port()), 64);
        port = ((InetSocketAddress) server.getLocalAddress()).getPort();
        acceptor = new Thread(this::acceptLoop, "kv-tcp-accept-" + port);
        acceptor.setDaemon(true); // belt and braces: close() joins it
        acceptor.start();
        log.info("kv tcp transport serving {} bytes on {}:{}", region.size(), options.bindHost(), port);
    }

    int port() {
        return port;
    }

    private void acceptLoop() {
        while (true) {
            SocketChannel ch;
            try {
                ch = server.accept();
            } catch (ClosedChannelException e) {
                return; // close() closed the listener
            } catch (IOException e) {
                synchronized (lock) {
                    if (closed) {
                        return;
                    }
                }
                log.warn("accept failed on port {}: {}", port, e.toString());
                try {
                    Thread.sleep(50); // e.g. out of file descriptors: don't spin on the error
                } catch (InterruptedException ie) {
                    return;
                }
                continue;
            }
            synchronized (lock) {
                if (closed) {
                    closeQuietly(ch);
                    return;
                }
                ServingSession s = new ServingSession(ch, region, token, options, this::sessionEnded,
                        "kv-tcp-serve-" + port + "-" + (accepted++));
                sessions.add(s);
                s.start();
            }
        }
    }

    private void sessionEnded(ServingSession s) {
        synchronized (lock) {
            sessions.remove(s);
        }
    }

    /** Number of live peer sockets (for tests and metrics). */
    int sessionCount() {
        synchronized (lock) {
            return sessions.size();
        }
    }

    /** Drops every peer socket but keeps listening: what a crashed-and-restarted peer looks like to clients. */
    void dropSessions() {
        List<ServingSession> copy;
        synchronized (lock) {
            copy = new ArrayList<>(sessions);
        }
        copy.forEach(ServingSession::close);
    }

    @Override
    public void close() {
        List<ServingSession> copy;
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            copy = new ArrayList<>(sessions);
        }
        closeQuietly(server);
        join(acceptor);
        for (ServingSession s : copy) {
            s.close();
        }
    }

    static void join(Thread t) {
        if (t == null || t == Thread.currentThread()) {
            return;
        }
        boolean interrupted = false;
        while (true) {
            try {
                t.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true; // finish the join: leaving the thread running is the leak we promise not to have
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    static void closeQuietly(java.io.Closeable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (IOException ignored) {
            // closing is best effort; the socket is unusable either way
        }
    }
}
