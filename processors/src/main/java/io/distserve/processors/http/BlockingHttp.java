package io.distserve.processors.http;

import io.vertx.core.Context;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Deque;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * A blocking HTTP/1.1 client for the proxy's calls to its nodes (and an engine's acknowledgements to its peers), with kept-alive connections per node. The calling
 * thread (a worker: never a Vert.x event loop, which it refuses) writes the request and reads the answer on the
 * socket itself: no hand-off to a selector thread and back, which java.net.http makes on every request (its round
 * trip cost several times what the node took to answer, see it/BENCHMARKS.md).
 *
 * <p>{@code http://} and {@code https://} (the JVM's default trust store, host name checked). Bodies: Content-Length, chunked, or until close.
 * A kept-alive connection the node closed meanwhile fails before any byte of the answer; such a request is sent
 * again once on a new connection (the node never saw it).
 */
public final class BlockingHttp {

    /** An answer whose headers have arrived; {@link #body} streams the rest. Closing the body ends the exchange. */
    public record Response(int status, Map<String, String> headers, InputStream body) {
    }

    /**
     * Ends a request from another thread: the client it was for has gone. {@link #cancel()} closes the connection
     * the request is on (a blocked wait for its answer or a read of its body fails at once), and a request sent
     * after it does not start. A connection back in the pool is no longer the request's: cancelling then touches
     * nothing.
     */
    public static final class Cancel {
        private boolean cancelled;
        private Conn conn;

        public void cancel() {
            Conn c;
            synchronized (this) {
                cancelled = true;
                c = conn;
                conn = null;
            }
            if (c != null) {
                c.close();
            }
        }

        public synchronized boolean isCancelled() {
            return cancelled;
        }

        synchronized void attach(Conn c) throws IOException {
            if (cancelled) {
                throw new CancelledException();
            }
            conn = c;
            c.owner = this;
        }

        synchronized void detach(Conn c) {
            if (conn == c) {
                conn = null;
            }
            c.owner = null;
        }
    }

    /** The request was cancelled ({@link Cancel}): its client has gone, no node is at fault. */
    public static final class CancelledException extends IOException {
        CancelledException() {
            super("cancelled: the client has gone");
        }
    }

    private static final int MAX_IDLE_PER_NODE = 64;

    private final int connectTimeoutMillis;
    private final Map<String, Deque<Conn>> idle = new ConcurrentHashMap<>();

    public BlockingHttp(Duration connectTimeout) {
        this.connectTimeoutMillis = (int) Math.max(1, connectTimeout.toMillis());
    }

    /**
     * Sends a request and waits for the answer's headers, at most {@code timeout} (also the longest wait for each
     * later read of the body).
     *
     * @param headers extra request headers (name, value); Host, Content-Length and Connection are set here
     * @param body    the request body, or null for none
     */
    public Response send(URI url, String method, Map<String, String> headers, byte[] body, Duration timeout)
            throws IOException {
        return send(url, method, headers, body, timeout, null);
    }

    /** As {@link #send(URI, String, Map, byte[], Duration)}, ended early by {@code cancel} (null: never). */
    public Response send(URI url, String method, Map<String, String> headers, byte[] body, Duration timeout,
                         Cancel cancel) throws IOException {
        if (Context.isOnEventLoopThread()) {
            // a route step that blocks must run behind a threads step (proxy.camel.yaml): an event loop that waits
            // on a node stalls every other request it serves
            throw new IllegalStateException("blocking call to " + url + " on the Vert.x event loop "
                    + Thread.currentThread().getName() + ": run this route step behind a threads step");
        }
        boolean tls = "https".equalsIgnoreCase(url.getScheme());
        if (!tls && !"http".equalsIgnoreCase(url.getScheme())) {
            throw new IOException("only http:// and https:// node URLs are supported, not " + url);
        }
        String host = url.getHost();
        int port = url.getPort() < 0 ? (tls ? 443 : 80) : url.getPort();
        String hostPort = host + ":" + port;
        String key = (tls ? "https://" : "http://") + hostPort;
        String target = url.getRawPath() == null || url.getRawPath().isEmpty() ? "/" : url.getRawPath();
        if (url.getRawQuery() != null) {
            target += "?" + url.getRawQuery();
        }
        byte[] request = encode(method, target, hostPort, headers, body);
        int readTimeout = (int) Math.min(Integer.MAX_VALUE, Math.max(1, timeout.toMillis()));
        while (true) {
            Conn conn = take(key);
            boolean reused = conn != null;
            if (conn == null) {
                conn = open(host, port, key, tls);
            }
            try {
                if (cancel != null) {
                    cancel.attach(conn);
                }
                conn.socket.setSoTimeout(readTimeout);
                conn.out.write(request);
                conn.out.flush();
                return readResponse(conn, method);
            } catch (CancelledException e) {
                release(conn);
                throw e;
            } catch (SocketTimeoutException e) {
                conn.close();
                throw new HttpTimeoutException("no answer from " + hostPort + " in " + timeout.toMillis() + " ms");
            } catch (IOException e) {
                conn.close();
                if (cancel != null && cancel.isCancelled()) {
                    throw new CancelledException();
                }
                if (!reused || !(e instanceof StaleConnection || e instanceof java.net.SocketException)) {
                    throw e instanceof StaleConnection
                            ? new IOException("the node closed the connection without answering") : e;
                }
                // a kept-alive connection the node had closed (EOF or reset before any byte of an answer): the
                // request never arrived; again, on another connection
            } catch (RuntimeException e) {
                conn.close();
                throw e;
            }
        }
    }

    private static byte[] encode(String method, String target, String host, Map<String, String> headers,
                                 byte[] body) {
        StringBuilder head = new StringBuilder(256);
        head.append(method).append(' ').append(target).append(" HTTP/1.1\r\nHost: ").append(host).append("\r\n");
        headers.forEach((name, value) -> head.append(name).append(": ").append(value).append("\r\n"));
        if (body != null) {
            head.append("Content-Length: ").append(body.length).append("\r\n");
        }
        head.append("\r\n");
        byte[] h = head.toString().getBytes(StandardCharsets.ISO_8859_1);
        if (body == null || body.length == 0) {
            return h;
        }
        byte[] all = new byte[h.length + body.length];
        System.arraycopy(h, 0, all, 0, h.length);
        System.arraycopy(body, 0, all, h.length, body.length);
        return all;
    }

    private Response readResponse(Conn conn, String method) throws IOException {
        while (true) {
            String statusLine = readLine(conn.in, true);
            if (!statusLine.startsWith("HTTP/1.")) {
                throw new IOException("not an HTTP/1.x answer: " + abbreviate(statusLine));
            }
            int status;
            try {
                status = Integer.parseInt(statusLine.substring(9, 12));
            } catch (RuntimeException e) {
                throw new IOException("bad status line: " + abbreviate(statusLine));
            }
            Map<String, String> headers = new java.util.HashMap<>();
            String line;
            while (!(line = readLine(conn.in, false)).isEmpty()) {
                int colon = line.indexOf(':');
                if (colon > 0) {
                    headers.merge(line.substring(0, colon).trim().toLowerCase(Locale.ROOT),
                            line.substring(colon + 1).trim(), (a, b) -> a + ", " + b);
                }
            }
            if (status >= 100 && status < 200) {
                continue; // 100 Continue and friends: the real answer follows
            }
            boolean keepAlive = !statusLine.startsWith("HTTP/1.0")
                    && !"close".equalsIgnoreCase(headers.getOrDefault("connection", ""));
            InputStream body;
            String length = headers.get("content-length");
            String encoding = headers.getOrDefault("transfer-encoding", "");
            if ("HEAD".equals(method) || status == 204 || status == 304) {
                body = new FixedBody(conn, 0, keepAlive, this);
            } else if (encoding.toLowerCase(Locale.ROOT).contains("chunked")) {
                body = new ChunkedBody(conn, keepAlive, this);
            } else if (length != null) {
                long n;
                try {
                    n = Long.parseLong(length);
                } catch (NumberFormatException e) {
                    throw new IOException("bad Content-Length: " + length);
                }
                body = new FixedBody(conn, n, keepAlive, this);
            } else {
                body = new UntilCloseBody(conn);
            }
            return new Response(status, headers, body);
        }
    }

    /** Reads a CRLF (or LF) line as ISO-8859-1; EOF before the first byte of an answer is a stale connection. */
    private static String readLine(InputStream in, boolean first) throws IOException {
        StringBuilder sb = new StringBuilder(64);
        int c;
        while ((c = in.read()) != -1) {
            if (c == '\n') {
                int len = sb.length();
                if (len > 0 && sb.charAt(len - 1) == '\r') {
                    sb.setLength(len - 1);
                }
                return sb.toString();
            }
            if (sb.length() > 16_384) {
                throw new IOException("header line too long");
            }
            sb.append((char) c);
        }
        if (first && sb.length() == 0) {
            throw new StaleConnection();
        }
        throw new EOFException("the node closed the connection in the middle of the answer's headers");
    }

    private static String abbreviate(String s) {
        return s.length() > 100 ? s.substring(0, 100) + "..." : s;
    }

    private Conn take(String key) {
        Deque<Conn> q = idle.get(key);
        if (q == null) {
            return null;
        }
        Conn c;
        while ((c = q.pollFirst()) != null) {
            if (!c.socket.isClosed()) {
                return c;
            }
        }
        return null;
    }

    void release(Conn conn) {
        Cancel owner = conn.owner;
        if (owner != null) {
            owner.detach(conn);
        }
        Deque<Conn> q = idle.computeIfAbsent(conn.key, k -> new ConcurrentLinkedDeque<>());
        if (q.size() >= MAX_IDLE_PER_NODE) {
            conn.close();
            return;
        }
        q.addFirst(conn);
    }

    private Conn open(String host, int port, String key, boolean tls) throws IOException {
        Socket socket = new Socket();
        try {
            socket.setTcpNoDelay(true);
            socket.setKeepAlive(true);
            socket.connect(new InetSocketAddress(host, port), connectTimeoutMillis);
            if (tls) {
                SSLSocket ssl = (SSLSocket) ((SSLSocketFactory) SSLSocketFactory.getDefault())
                        .createSocket(socket, host, port, true);
                SSLParameters params = ssl.getSSLParameters();
                params.setEndpointIdentificationAlgorithm("HTTPS"); // the certificate must name the host
                ssl.setSSLParameters(params);
                ssl.setSoTimeout(connectTimeoutMillis);
                ssl.startHandshake();
                socket = ssl;
            }
            return new Conn(key, socket, new BufferedInputStream(socket.getInputStream(), 16_384),
                    socket.getOutputStream());
        } catch (IOException e) {
            socket.close();
            throw e;
        }
    }

    static final class Conn {
        final String key;
        final Socket socket;
        final InputStream in;
        final OutputStream out;
        /** The request this connection is serving, if it may be cancelled. */
        volatile Cancel owner;

        Conn(String key, Socket socket, InputStream in, OutputStream out) {
            this.key = key;
            this.socket = socket;
            this.in = in;
            this.out = out;
        }

        void close() {
            try {
                socket.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }

    private static final class StaleConnection extends IOException {
        StaleConnection() {
            super("stale connection", null);
        }
    }

    /**
     * A body being read. Read to its end, the connection goes back to the pool; closed before (the client left,
     * an error), the connection is closed, which also ends a read blocked in another thread.
     */
    private abstract static class Body extends InputStream {
        final Conn conn;
        final boolean keepAlive;
        final BlockingHttp pool;
        volatile boolean done;
        volatile boolean closed;

        Body(Conn conn, boolean keepAlive, BlockingHttp pool) {
            this.conn = conn;
            this.keepAlive = keepAlive;
            this.pool = pool;
        }

        void finished() {
            if (!done) {
                done = true;
                if (keepAlive && pool != null && !closed) {
                    pool.release(conn);
                } else {
                    conn.close();
                }
            }
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            int n = read(one, 0, 1);
            return n == -1 ? -1 : one[0] & 0xff;
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                if (!done) {
                    done = true;
                    conn.close();
                }
            }
        }

        void checkOpen() throws IOException {
            if (closed) {
                throw new IOException("closed");
            }
        }
    }

    private static final class FixedBody extends Body {
        private long remaining;

        FixedBody(Conn conn, long length, boolean keepAlive, BlockingHttp pool) {
            super(conn, keepAlive, pool);
            this.remaining = length;
            if (length == 0) {
                finished();
            }
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            checkOpen();
            if (remaining == 0) {
                finished();
                return -1;
            }
            int n = conn.in.read(b, off, (int) Math.min(len, remaining));
            if (n == -1) {
                conn.close();
                done = true;
                throw new EOFException("the node closed the connection with " + remaining + " bytes still to come");
            }
            remaining -= n;
            if (remaining == 0) {
                finished();
            }
            return n;
        }

        @Override
        public int available() throws IOException {
            return closed || remaining == 0 ? 0 : (int) Math.min(remaining, conn.in.available());
        }
    }

    private static final class ChunkedBody extends Body {
        private long chunkLeft;
        private boolean last;

        ChunkedBody(Conn conn, boolean keepAlive, BlockingHttp pool) {
            super(conn, keepAlive, pool);
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            checkOpen();
            if (last) {
                return -1;
            }
            if (chunkLeft == 0) {
                String size = readLine(conn.in, false);
                int semi = size.indexOf(';');
                try {
                    chunkLeft = Long.parseLong((semi >= 0 ? size.substring(0, semi) : size).trim(), 16);
                } catch (NumberFormatException e) {
                    throw new IOException("bad chunk size: " + abbreviate(size));
                }
                if (chunkLeft == 0) {
                    while (!readLine(conn.in, false).isEmpty()) {
                        // trailers
                    }
                    last = true;
                    finished();
                    return -1;
                }
            }
            int n = conn.in.read(b, off, (int) Math.min(len, chunkLeft));
            if (n == -1) {
                conn.close();
                done = true;
                throw new EOFException("the node closed the connection in the middle of a chunk");
            }
            chunkLeft -= n;
            if (chunkLeft == 0) {
                readLine(conn.in, false); // the CRLF after the chunk's data
            }
            return n;
        }

        @Override
        public int available() throws IOException {
            return closed || last ? 0 : (int) Math.min(chunkLeft, conn.in.available());
        }
    }

    private static final class UntilCloseBody extends Body {
        UntilCloseBody(Conn conn) {
            super(conn, false, null);
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            checkOpen();
            int n = conn.in.read(b, off, len);
            if (n == -1) {
                finished();
            }
            return n;
        }
    }

    /** Reads a whole body (for small answers). */
    public static byte[] readAll(InputStream body) throws IOException {
        try (body) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            body.transferTo(out);
            return out.toByteArray();
        }
    }
}
