package io.distserve.app;

import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.registry.NodeRole;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * An engine node ({@link EngineApplication}) on a TINY random-weight checkpoint, started in this JVM on a free port
 * (so that its MBeans are in the platform MBean server), with HTTP helpers. One per test class: start in
 * {@code @BeforeAll}, {@link #close()} in {@code @AfterAll}.
 */
final class TestEngineServer implements AutoCloseable {

    static final String MODEL = "tiny";
    static final ObjectMapper JSON = new ObjectMapper();

    private final EngineApplication app;
    private final Thread thread;
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    final int port;
    final String base;
    final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private final String apiKey;

    /**
     * @param dir       a temporary folder for the checkpoint
     * @param apiKeys   --api-keys (empty: none)
     * @param maxRunning --max-batch-size
     * @param maxQueue  --max-queue
     */
    TestEngineServer(Path dir, List<String> apiKeys, int maxRunning, int maxQueue) throws Exception {
        this(dir, apiKeys, maxRunning, maxQueue, null);
    }

    /** @param extraRoutes --extra-routes (null: none) */
    TestEngineServer(Path dir, List<String> apiKeys, int maxRunning, int maxQueue, String extraRoutes)
            throws Exception {
        Path model = dir.resolve(MODEL);
        new CheckpointGenerator(ModelShape.TINY, 7, null).withThreads(1).writeTo(model);
        this.port = freePort();
        this.base = "http://127.0.0.1:" + port;
        this.apiKey = apiKeys.isEmpty() ? null : apiKeys.get(0);
        // A small KV cache (256 blocks of 64 tokens: 16k tokens, 32 MiB) and one compute thread: the machine is shared.
        EngineOptions engine = new EngineOptions("cpu", 64, 0.5, 256, 1, new EngineConfig(2048, maxRunning, maxQueue));
        EngineServerSettings settings = new EngineServerSettings(model, MODEL, "127.0.0.1", port, NodeRole.Hybrid,
                null, apiKeys, engine, null, extraRoutes, null, "tcp", 0, java.time.Duration.ofSeconds(60));
        this.app = new EngineApplication(settings);
        this.thread = new Thread(() -> {
            try {
                app.run();
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "engine-server-" + port);
        thread.setDaemon(true);
        thread.start();
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100)).until(() -> {
            if (failure.get() != null) {
                throw new IllegalStateException("the server failed to start", failure.get());
            }
            try {
                return get("/health").statusCode() == 200;
            } catch (IOException e) {
                return false;
            }
        });
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    EngineApplication app() {
        return app;
    }

    @Override
    public void close() throws Exception {
        app.stop();
        thread.join(Duration.ofSeconds(60).toMillis());
        if (thread.isAlive()) {
            throw new IllegalStateException("the server thread did not stop");
        }
    }

    // ------------------------------------------------------------------------------------------------ HTTP

    HttpRequest.Builder request(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(60));
        if (apiKey != null) {
            b.header("Authorization", "Bearer " + apiKey);
        }
        return b;
    }

    HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return http.send(request(path).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
        return http.send(request(path).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** Sends a raw HTTP/1.1 POST (with the key, if any) on a socket the caller closes when it likes. */
    java.net.Socket openRequest(String path, String body) throws IOException {
        java.net.Socket socket = new java.net.Socket("127.0.0.1", port);
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        java.io.OutputStream out = socket.getOutputStream();
        out.write(("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + (apiKey == null ? "" : "Authorization: Bearer " + apiKey + "\r\n")
                + "Content-Length: " + bytes.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.flush();
        return socket;
    }

    static JsonNode json(HttpResponse<String> response) {
        try {
            return JSON.readTree(response.body());
        } catch (IOException e) {
            throw new UncheckedIOException("not JSON: " + response.body(), e);
        }
    }

    /** One SSE {@code data:} payload and when it arrived (nanoseconds after the request was sent). */
    record Event(String data, long atNanos) {
        boolean done() {
            return "[DONE]".equals(data);
        }

        JsonNode json() {
            try {
                return JSON.readTree(data);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** A streamed response: status, content type, and every data event with its arrival time. */
    record Stream(int status, String contentType, List<Event> events, String rawBody) {
        List<JsonNode> chunks() {
            return events.stream().filter(e -> !e.done()).map(Event::json).toList();
        }
    }

    /** POSTs a streamed request and reads the SSE events as they come, timestamping each. */
    Stream postStream(String path, String body) throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        HttpResponse<InputStream> response = http.send(request(path).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
        List<Event> events = new ArrayList<>();
        StringBuilder raw = new StringBuilder();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                raw.append(line).append('\n');
                if (line.startsWith("data: ")) {
                    events.add(new Event(line.substring(6), System.nanoTime() - t0));
                }
            }
        }
        return new Stream(response.statusCode(), response.headers().firstValue("Content-Type").orElse(""), events,
                raw.toString());
    }

    // ------------------------------------------------------------------------------------------------ state

    /** A sample of the Prometheus text, e.g. {@code distserve_kv_blocks_used}; fails when absent. */
    double metric(String sample) throws IOException, InterruptedException {
        return metric(get("/metrics").body(), sample);
    }

    static double metric(String scrape, String sample) {
        for (String line : scrape.split("\n")) {
            if (line.startsWith(sample + " ")) {
                return Double.parseDouble(line.substring(sample.length() + 1).trim());
            }
        }
        throw new AssertionError("no sample '" + sample + "' in /metrics:\n" + scrape);
    }

    static final MBeanServer MBEANS = ManagementFactory.getPlatformMBeanServer();

    /** The engine MBean of this server (Camel's domain, type=services, name=DistServeEngine). */
    ObjectName engineMBean() throws Exception {
        Set<ObjectName> names = MBEANS.queryNames(
                new ObjectName("org.apache.camel:context=*,type=services,name=DistServeEngine"), null);
        if (names.size() != 1) {
            throw new AssertionError("expected one engine MBean, found " + names);
        }
        return names.iterator().next();
    }

    Object engineAttribute(String name) throws Exception {
        return MBEANS.getAttribute(engineMBean(), name);
    }

    static String completion(String prompt, int maxTokens, boolean stream, String extra) {
        return "{\"model\":\"tiny\",\"prompt\":" + quote(prompt) + ",\"max_tokens\":" + maxTokens
                + ",\"temperature\":0,\"stream\":" + stream + (extra == null ? "" : "," + extra) + "}";
    }

    static String chat(String content, int maxTokens, boolean stream, String extra) {
        return "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":" + quote(content)
                + "}],\"max_tokens\":" + maxTokens + ",\"temperature\":0,\"stream\":" + stream
                + (extra == null ? "" : "," + extra) + "}";
    }

    static String quote(String s) {
        try {
            return JSON.writeValueAsString(s);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
