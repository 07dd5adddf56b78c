package io.distserve.app;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An engine node on a raw server socket, for what the proxy's forward must survive: each request is answered by the
 * node's {@link Behavior}, which writes bytes as it likes (a whole answer, a stream, a stream cut off mid-way, nothing
 * until the proxy gives up). HTTP/1.1 with kept-alive connections, one thread per connection.
 */
final class FakeNode implements AutoCloseable {

    /** What the node does with one request; it may throw to drop the connection. */
    interface Behavior {
        void answer(Request request, OutputStream out, Socket socket) throws Exception;
    }

    record Request(String method, String path, Map<String, String> headers, byte[] body) {
        String text() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    static final String COMPLETION = "{\"id\":\"cmpl-node\",\"object\":\"text_completion\",\"created\":1795000000,"
            + "\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\" node\",\"logprobs\":null,"
            + "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,"
            + "\"total_tokens\":5}}";

    private final ServerSocket server;
    private final Thread acceptor;
    private volatile Behavior behavior;
    final List<Request> requests = new CopyOnWriteArrayList<>();
    /** Connections the proxy closed (EOF or reset) while the node was still answering on them. */
    final AtomicInteger cancelled = new AtomicInteger();
    volatile CountDownLatch cancelledLatch = new CountDownLatch(1);
    /** Bytes of answers written so far (all requests). */
    final AtomicLong written = new AtomicLong();

    FakeNode(Behavior behavior) throws IOException {
        this.behavior = behavior;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = new Thread(this::accept, "fake-node-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    String url() {
        return "http://127.0.0.1:" + server.getLocalPort();
    }

    void behave(Behavior next) {
        this.behavior = next;
    }

    private void accept() {
        while (!server.isClosed()) {
            try {
                Socket socket = server.accept();
                socket.setTcpNoDelay(true);
                Thread t = new Thread(() -> serve(socket), "fake-node-conn");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket socket) {
        try (socket) {
            InputStream in = socket.getInputStream();
            OutputStream out = socket.getOutputStream();
            while (true) {
                Request request = read(in);
                if (request == null) {
                    return;
                }
                requests.add(request);
                try {
                    behavior.answer(request, new CountingStream(out), socket);
                } catch (SocketException | PeerGone e) {
                    cancelled.incrementAndGet();
                    cancelledLatch.countDown();
                    return;
                }
                out.flush();
            }
        } catch (Exception e) {
            // the connection ends
        }
    }

    /** The proxy closed the connection while the node waited for it (see {@link #awaitClose}). */
    static final class PeerGone extends Exception {
    }

    private final class CountingStream extends OutputStream {
        private final OutputStream out;

        CountingStream(OutputStream out) {
            this.out = out;
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            written.incrementAndGet();
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            written.addAndGet(len);
        }

        @Override
        public void flush() throws IOException {
            out.flush();
        }
    }

    private static Request read(InputStream in) throws IOException {
        String requestLine = line(in);
        if (requestLine == null) {
            return null;
        }
        Map<String, String> headers = new LinkedHashMap<>();
        String h;
        while ((h = line(in)) != null && !h.isEmpty()) {
            int colon = h.indexOf(':');
            headers.put(h.substring(0, colon).trim().toLowerCase(Locale.ROOT), h.substring(colon + 1).trim());
        }
        int length = Integer.parseInt(headers.getOrDefault("content-length", "0"));
        byte[] body = in.readNBytes(length);
        String[] parts = requestLine.split(" ");
        return new Request(parts[0], parts[1], headers, body);
    }

    private static String line(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int c;
        while ((c = in.read()) != -1) {
            if (c == '\n') {
                String s = b.toString(StandardCharsets.ISO_8859_1);
                return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
            }
            b.write(c);
        }
        return b.size() == 0 ? null : b.toString(StandardCharsets.ISO_8859_1);
    }

    // ------------------------------------------------------------------------------------------ behaviours

    static Behavior json(int status, String body) {
        return (request, out, socket) -> {
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            out.write(("HTTP/1.1 " + status + " X\r\nContent-Type: application/json\r\nContent-Length: "
                    + bytes.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(bytes);
        };
    }

    static void streamHead(OutputStream out) throws IOException {
        out.write(("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    static void chunk(OutputStream out, String text) throws IOException {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        out.write((Integer.toHexString(bytes.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    static String event(int i) {
        return "data: {\"id\":\"cmpl-node\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"t" + i
                + "\",\"finish_reason\":null}]}\n\n";
    }

    /** {@code n} events, {@code gapMillis} apart, then [DONE]. */
    static Behavior stream(int n, long gapMillis) {
        return (request, out, socket) -> {
            streamHead(out);
            for (int i = 0; i < n; i++) {
                chunk(out, event(i));
                if (gapMillis > 0) {
                    Thread.sleep(gapMillis);
                }
            }
            chunk(out, "data: [DONE]\n\n");
            out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        };
    }

    /** The given event payloads, then [DONE]. */
    static Behavior streamOf(java.util.List<String> payloads) {
        return (request, out, socket) -> {
            streamHead(out);
            for (String payload : payloads) {
                chunk(out, "data: " + payload + "\n\n");
            }
            chunk(out, "data: [DONE]\n\n");
            out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        };
    }

    /** A whole answer's head and half its body, then a reset: a node that died while it answered. */
    static Behavior halfAnswer() {
        return (request, out, socket) -> {
            byte[] bytes = COMPLETION.getBytes(StandardCharsets.UTF_8);
            out.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + bytes.length
                    + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(bytes, 0, bytes.length / 2);
            out.flush();
            Thread.sleep(50);
            socket.setSoLinger(true, 0);
            socket.close();
        };
    }

    /** {@code n} events, then the connection is cut (no [DONE], no last chunk): a node that died. */
    /** Event {@code i} as an engine asked for token ids sends it: token id {@code 100 + i}. */
    static String eventWithId(int i) {
        return "data: {\"id\":\"cmpl-node\",\"object\":\"text_completion\",\"created\":17,\"model\":\"m\","
                + "\"choices\":[{\"index\":0,\"text\":\"t" + i + "\",\"logprobs\":null,\"finish_reason\":null,"
                + "\"token_ids\":[" + (100 + i) + "]}]}\n\n";
    }

    /**
     * An engine that resumes: {@code n} tokens in all, starting after the {@code resume_token_ids} the request
     * carries; with {@code dieAt} >= 0 it dies (a reset) once it has sent token {@code dieAt - 1}.
     */
    static Behavior resumable(int n, int dieAt) {
        return (request, out, socket) -> {
            String body = new String(request.body(), StandardCharsets.UTF_8);
            int from = 0;
            int at = body.indexOf("\"resume_token_ids\":[");
            if (at >= 0) {
                String list = body.substring(at + 20, body.indexOf(']', at));
                from = list.isBlank() ? 0 : list.split(",").length;
            }
            streamHead(out);
            for (int i = from; i < n; i++) {
                if (i == dieAt) {
                    Thread.sleep(50);
                    socket.setSoLinger(true, 0);
                    socket.close();
                    return;
                }
                chunk(out, eventWithId(i));
            }
            chunk(out, "data: [DONE]\n\n");
            out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        };
    }

    static Behavior dieAfter(int n) {
        return (request, out, socket) -> {
            streamHead(out);
            for (int i = 0; i < n; i++) {
                chunk(out, event(i));
            }
            Thread.sleep(100);
            socket.setSoLinger(true, 0);
            socket.close();
        };
    }

    /** Sends the head of a stream (or nothing, for a whole answer), then waits until the proxy closes. */
    static Behavior holdUntilClosed(boolean streamHead) {
        return (request, out, socket) -> {
            if (streamHead) {
                streamHead(out);
                chunk(out, event(0));
            }
            awaitClose(socket, out, streamHead);
        };
    }

    /** Waits (at most 30 s) for the peer to close; a stream keeps sending events meanwhile. */
    private static void awaitClose(Socket socket, OutputStream out, boolean streaming) throws Exception {
        socket.setSoTimeout(50);
        long end = System.nanoTime() + 30_000_000_000L;
        int i = 1;
        while (System.nanoTime() < end) {
            try {
                if (socket.getInputStream().read() == -1) {
                    throw new PeerGone();
                }
            } catch (java.net.SocketTimeoutException still) {
                // open
            }
            if (streaming) {
                chunk(out, event(i++));
            }
        }
    }

    @Override
    public void close() throws IOException {
        server.close();
    }
}
