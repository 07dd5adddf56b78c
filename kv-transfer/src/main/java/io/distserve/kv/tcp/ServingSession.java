package io.distserve.kv.tcp;

import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.RefusedPeers;
import io.distserve.kv.transfer.Tokens;
import io.distserve.kv.transfer.TransportOptions;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One accepted socket on the serving side: authenticate, then answer READ requests in order from the registered
 * region. Everything the peer sends is untrusted: every request is bounds-checked against the region's layout and a
 * bad one gets an ERROR frame, never bytes outside the region and never an exception that kills the server. The
 * bytes go out through a {@link RegionSender}: from host memory directly, from GPU memory staged through pinned
 * buffers.
 */
final class ServingSession {

    private static final Logger log = LoggerFactory.getLogger(ServingSession.class);

    private final SocketChannel ch;
    private final MemoryRegion region;
    private final byte[] token;
    private final TransportOptions options;
    private final StagingOptions staging;
    private final Consumer<ServingSession> onEnd;
    private final Thread thread;

    ServingSession(SocketChannel ch, MemoryRegion region, byte[] token, TransportOptions options,
                   Consumer<ServingSession> onEnd, String threadName) {
        this.ch = ch;
        this.region = region;
        this.token = token;
        this.options = options;
        this.staging = StagingOptions.from(options);
        this.onEnd = onEnd;
        this.thread = new Thread(this::run, threadName);
        this.thread.setDaemon(true); // close() joins it; daemon only so a forgotten close can't hang JVM exit
    }

    void start() {
        thread.start();
    }

    void close() {
        TcpServer.closeQuietly(ch);
        TcpServer.join(thread);
    }

    private void run() {
        String peer = "?";
        try {
            peer = String.valueOf(ch.getRemoteAddress());
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            if (options.socketBufferBytes() > 0) {
                ch.setOption(StandardSocketOptions.SO_SNDBUF, options.socketBufferBytes());
            }
            if (handshake(peer)) {
                serve();
            }
        } catch (AsynchronousCloseException e) {
            log.debug("session with {} closed", peer);
        } catch (EOFException e) {
            log.debug("peer {} hung up mid-frame", peer);
        } catch (IOException e) {
            log.debug("session with {} ended: {}", peer, e.toString());
        } catch (RuntimeException e) {
            // A bug here must cost one socket, not the server.
            log.warn("session with {} failed", peer, e);
        } finally {
            // off the server's list before the peer can see the close: whoever sees EOF sees the session gone (but a
            // refused peer sees our half-close first, while the drain keeps the session listed for a closing server)
            onEnd.accept(this);
            TcpServer.closeQuietly(ch);
        }
    }

    /** Reads HELLO with a deadline (a silent peer must not pin a thread); answers WELCOME. */
    private boolean handshake(String peer) throws IOException {
        // The channel's own read ignores SO_TIMEOUT; its socket adaptor's stream honours it (JDK 13+), and reads
        // straight from the channel without buffering, so the channel can be used directly afterwards.
        ch.socket().setSoTimeout((int) Math.min(Integer.MAX_VALUE, options.handshakeTimeout().toMillis()));
        DataInputStream in = new DataInputStream(ch.socket().getInputStream());
        byte status;
        String why;
        try {
            int magic = in.readInt();
            short version = in.readShort();
            int len = in.readUnsignedShort();
            if (magic != WireProtocol.MAGIC || len > WireProtocol.MAX_SHORT_STRING) {
                status = WireProtocol.WELCOME_BAD_HELLO;
                why = "not a kv transfer hello";
            } else {
                byte[] presented = new byte[len];
                in.readFully(presented);
                if (version != WireProtocol.VERSION) {
                    status = WireProtocol.WELCOME_BAD_VERSION;
                    why = "protocol version " + version + " not supported (server speaks " + WireProtocol.VERSION + ")";
                } else if (!Tokens.matches(token, presented)) {
                    status = WireProtocol.WELCOME_BAD_TOKEN;
                    why = "bad token";
                } else {
                    status = WireProtocol.WELCOME_OK;
                    why = "";
                }
            }
        } catch (SocketTimeoutException e) {
            log.warn("peer {} sent no hello within {}; closing", peer, options.handshakeTimeout());
            return false;
        }
        ch.socket().setSoTimeout(0);
        WireProtocol.writeFully(ch, WireProtocol.welcome(status, region.size(), why));
        if (status != WireProtocol.WELCOME_OK) {
            log.warn("refused kv transfer peer {}: {}", peer, why);
            drainBeforeClose(in);
            return false;
        }
        log.debug("kv transfer peer {} authenticated", peer);
        return true;
    }

    private void serve() throws IOException {
        ByteBuffer req = ByteBuffer.allocateDirect(WireProtocol.REQUEST_BYTES);
        ByteBuffer hdr = ByteBuffer.allocateDirect(WireProtocol.RESPONSE_HEADER_BYTES);
        try (RegionSender sender = RegionSender.forRegion(region, staging)) {
            while (true) {
                req.clear();
                if (!WireProtocol.readFully(ch, req)) {
                    return; // peer closed cleanly between requests
                }
                req.flip();
                int op = req.getInt();
                long id = req.getLong();
                long offset = req.getLong();
                int length = req.getInt();
                if (op != WireProtocol.OP_READ) {
                    sendError(hdr, id, "unknown op " + op + "; closing");
                    drainBeforeClose(ch.socket().getInputStream());
                    return;
                }
                try {
                    if (length <= 0) {
                        throw new IllegalArgumentException("length " + length + " must be positive");
                    }
                    region.layout().checkRange(offset, length); // the only bounds check that matters: no byte outside
                } catch (IllegalArgumentException e) {
                    sendError(hdr, id, "read of " + length + " bytes at offset " + offset + " refused: "
                            + e.getMessage());
                    continue;
                }
                hdr.clear();
                hdr.putInt(WireProtocol.STATUS_DATA).putLong(id).putInt(length).flip();
                sender.send(ch, hdr, offset, length);
            }
        }
    }

    /**
     * After a refusal: the peer reads why before we hang up (RefusedPeers says why that needs a drain). The session
     * stays on the server's list meanwhile, so closing the server still ends it at once.
     */
    private void drainBeforeClose(InputStream in) {
        if (!RefusedPeers.drain(ch.socket(), in, options.handshakeTimeout())) {
            log.debug("a refused kv transfer peer did not hang up within {}; closing", options.handshakeTimeout());
        }
    }

    private void sendError(ByteBuffer hdr, long id, String message) throws IOException {
        byte[] msg = WireProtocol.truncate(message, WireProtocol.MAX_ERROR_MESSAGE);
        hdr.clear();
        hdr.putInt(WireProtocol.STATUS_ERROR).putLong(id).putInt(msg.length).flip();
        WireProtocol.writeFully(ch, hdr);
        WireProtocol.writeFully(ch, ByteBuffer.wrap(msg));
        log.debug("error frame to peer: {}", new String(msg, StandardCharsets.UTF_8));
    }
}
