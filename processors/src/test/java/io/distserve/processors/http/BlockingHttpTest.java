package io.distserve.processors.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class BlockingHttpTest {

    HttpServer server;
    String base;
    final Set<String> clients = ConcurrentHashMap.newKeySet();
    final CountDownLatch release = new CountDownLatch(1);
    final BlockingHttp http = new BlockingHttp(Duration.ofSeconds(2));

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/fixed", x -> {
            clients.add(x.getRemoteAddress().toString());
            byte[] in = x.getRequestBody().readAllBytes();
            byte[] out = ("echo " + new String(in, StandardCharsets.UTF_8) + " key="
                    + x.getRequestHeaders().getFirst("Authorization")).getBytes(StandardCharsets.UTF_8);
            x.sendResponseHeaders(201, out.length);
            x.getResponseBody().write(out);
            x.close();
        });
        server.createContext("/chunked", x -> {
            clients.add(x.getRemoteAddress().toString());
            x.getRequestBody().readAllBytes();
            x.sendResponseHeaders(200, 0); // chunked
            OutputStream out = x.getResponseBody();
            for (int i = 0; i < 3; i++) {
                out.write(("data: " + i + "\n\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
            x.close();
        });
        server.createContext("/hang", x -> {
            try {
                release.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            x.sendResponseHeaders(200, -1);
            x.close();
        });
        server.setExecutor(java.util.concurrent.Executors.newCachedThreadPool());
        server.start();
        base = "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @AfterEach
    void stop() {
        release.countDown();
        server.stop(0);
    }

    String text(InputStream in) throws IOException {
        return new String(BlockingHttp.readAll(in), StandardCharsets.UTF_8);
    }

    @Test
    void fixedLengthAnswersReuseOneConnection() throws Exception {
        for (int i = 0; i < 5; i++) {
            BlockingHttp.Response r = http.send(URI.create(base + "/fixed"), "POST",
                    Map.of("Authorization", "Bearer k"), ("hello " + i).getBytes(StandardCharsets.UTF_8),
                    Duration.ofSeconds(5));
            assertThat(r.status()).isEqualTo(201);
            assertThat(text(r.body())).isEqualTo("echo hello " + i + " key=Bearer k");
        }
        assertThat(clients).hasSize(1);
    }

    @Test
    void chunkedAnswersAreDecodedAndTheConnectionReused() throws Exception {
        for (int i = 0; i < 3; i++) {
            BlockingHttp.Response r = http.send(URI.create(base + "/chunked"), "POST", Map.of(), new byte[0],
                    Duration.ofSeconds(5));
            assertThat(r.status()).isEqualTo(200);
            assertThat(text(r.body())).isEqualTo("data: 0\n\ndata: 1\n\ndata: 2\n\n");
        }
        assertThat(clients).hasSize(1);
    }

    @Test
    void noAnswerInTimeIsATimeout() {
        assertThatThrownBy(() -> http.send(URI.create(base + "/hang"), "GET", Map.of(), null,
                Duration.ofMillis(200))).isInstanceOf(HttpTimeoutException.class);
    }

    @Test
    void closingTheBodyFromAnotherThreadEndsABlockedRead() throws Exception {
        try (ServerSocket raw = new ServerSocket(0)) {
            Thread node = new Thread(() -> {
                try (Socket s = raw.accept()) {
                    s.getInputStream().read(new byte[4096]);
                    s.getOutputStream().write(("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + "5\r\nhello\r\n").getBytes(StandardCharsets.US_ASCII));
                    s.getOutputStream().flush();
                    Thread.sleep(5000); // the rest never comes
                } catch (Exception ignored) {
                    // closed
                }
            });
            node.start();
            BlockingHttp.Response r = http.send(URI.create("http://127.0.0.1:" + raw.getLocalPort() + "/x"), "POST",
                    Map.of(), new byte[] {1}, Duration.ofSeconds(5));
            byte[] buf = new byte[5];
            assertThat(r.body().readNBytes(buf, 0, 5)).isEqualTo(5);
            new Thread(() -> {
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ignored) {
                    // no
                }
                try {
                    r.body().close();
                } catch (IOException ignored) {
                    // no
                }
            }).start();
            long t0 = System.nanoTime();
            assertThatThrownBy(() -> r.body().read()).isInstanceOf(IOException.class);
            assertThat(System.nanoTime() - t0).isLessThan(TimeUnit.SECONDS.toNanos(3));
            node.interrupt();
        }
    }

    /** A kept-alive connection the node closed meanwhile: the request goes again on a new one, once. */
    @Test
    void aStaleKeptAliveConnectionIsReplaced() throws Exception {
        try (ServerSocket raw = new ServerSocket(0)) {
            AtomicInteger connections = new AtomicInteger();
            Thread node = new Thread(() -> {
                try {
                    // first connection: answers once (kept alive), then closes without answering the second
                    try (Socket s = raw.accept()) {
                        connections.incrementAndGet();
                        s.getInputStream().read(new byte[4096]);
                        s.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                .getBytes(StandardCharsets.US_ASCII));
                        s.getOutputStream().flush();
                    }
                    try (Socket s = raw.accept()) {
                        connections.incrementAndGet();
                        s.getInputStream().read(new byte[4096]);
                        s.getOutputStream().write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain"
                                .getBytes(StandardCharsets.US_ASCII));
                        s.getOutputStream().flush();
                        s.getInputStream().read();
                    }
                } catch (IOException ignored) {
                    // done
                }
            });
            node.start();
            URI url = URI.create("http://127.0.0.1:" + raw.getLocalPort() + "/x");
            assertThat(text(http.send(url, "POST", Map.of(), new byte[] {1}, Duration.ofSeconds(5)).body()))
                    .isEqualTo("ok");
            Thread.sleep(100); // the node has closed the first connection
            assertThat(text(http.send(url, "POST", Map.of(), new byte[] {2}, Duration.ofSeconds(5)).body()))
                    .isEqualTo("again");
            assertThat(connections.get()).isEqualTo(2);
            node.join(2000);
        }
    }

    @Test
    void aNodeThatIsDownIsAConnectFailure() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        assertThatThrownBy(() -> http.send(URI.create("http://127.0.0.1:" + port + "/x"), "GET", Map.of(), null,
                Duration.ofSeconds(1))).isInstanceOf(java.net.ConnectException.class);
    }

    /** https:// is spoken with TLS: a node that answers in plain HTTP is a TLS failure, not a garbled answer. */
    @Test
    void httpsNodesAreSpokenToWithTls() throws Exception {
        try (ServerSocket raw = new ServerSocket(0)) {
            Thread node = new Thread(() -> {
                try (Socket s = raw.accept()) {
                    s.getInputStream().read(new byte[4096]); // a TLS ClientHello
                    s.getOutputStream().write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
                            .getBytes(StandardCharsets.US_ASCII));
                    s.getOutputStream().flush();
                    s.getInputStream().read();
                } catch (IOException ignored) {
                    // closed
                }
            });
            node.start();
            assertThatThrownBy(() -> http.send(URI.create("https://127.0.0.1:" + raw.getLocalPort() + "/x"), "GET",
                    Map.of(), null, Duration.ofSeconds(2))).isInstanceOf(javax.net.ssl.SSLException.class);
            node.join(2000);
        }
    }

    /** A route step that forgot its threads step fails at once instead of stalling the event loop it runs on. */
    @Test
    void refusesToBlockAVertxEventLoop() throws Exception {
        io.vertx.core.Vertx vertx = io.vertx.core.Vertx.vertx();
        try {
            java.util.concurrent.CompletableFuture<Throwable> thrown = new java.util.concurrent.CompletableFuture<>();
            vertx.runOnContext(v -> {
                try {
                    http.send(URI.create(base + "/fixed"), "POST", Map.of(), new byte[0], Duration.ofSeconds(2));
                    thrown.complete(null);
                } catch (Throwable t) {
                    thrown.complete(t);
                }
            });
            assertThat(thrown.get(10, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("event loop").hasMessageContaining("threads step");
            assertThat(clients).as("nothing was sent").isEmpty();
            // the same call from a worker is fine
            assertThat(vertx.executeBlocking(() -> http.send(URI.create(base + "/fixed"), "POST", Map.of(),
                    new byte[0], Duration.ofSeconds(2)).status()).toCompletionStage().toCompletableFuture()
                    .get(10, TimeUnit.SECONDS)).isEqualTo(201);
        } finally {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }
}
