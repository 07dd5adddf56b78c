package io.distserve.app;

import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/** A Hybrid proxy ({@link ProxyApplication}, its built-in routes) in this JVM on a free port, with HTTP helpers. */
final class TestProxy implements AutoCloseable {

    final int port;
    final String base;
    final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private final ProxyApplication app;
    private final Thread thread;

    /** @param properties extra lines of the --properties file */
    TestProxy(Path dir, String properties) throws Exception {
        Path props = dir.resolve("proxy.properties");
        Files.writeString(props, properties);
        port = freePort();
        base = "http://127.0.0.1:" + port;
        app = new ProxyApplication(new ProxyServerSettings("127.0.0.1", port, "Hybrid", "min_expected_latency",
                "TCP", List.of(), dir.resolve("nodes.json"), null, null, props));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        thread = new Thread(() -> {
            try {
                app.run();
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "proxy-" + port);
        thread.setDaemon(true);
        thread.start();
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100)).until(() -> {
            if (failure.get() != null) {
                throw new IllegalStateException("the proxy failed to start", failure.get());
            }
            try {
                return get("/health").statusCode() == 200;
            } catch (IOException e) {
                return false;
            }
        });
    }

    HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(30)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Override
    public void close() throws Exception {
        app.stop();
        thread.join(TimeUnit.SECONDS.toMillis(60));
    }
}
