package io.distserve.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Property;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The proxy's Hybrid forward ({@code forwardHybrid}: Vert.x's HttpClient, on the event loop) against {@link FakeNode}s
 * that answer, stream, fail before answering, die mid-stream, or are left by the client. A real proxy
 * ({@link ProxyApplication}, its built-in routes) in this JVM. After each test, no request is left in flight on any
 * node; after all of them, the log holds no warning of Vert.x's blocked-thread checker.
 */
class ProxyHybridForwardTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final String REQUEST = "{ \"prompt\" : \"hi\",  \"model\":\"m\",\"max_tokens\":4 }";
    static final String STREAM_REQUEST = "{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":4,\"stream\":true}";

    @TempDir
    static Path dir;
    static TestProxy proxy;
    static String base;
    static int port;
    static final List<LogEvent> logs = new CopyOnWriteArrayList<>();
    static AbstractAppender capture;
    static HttpClient http;
    final List<FakeNode> nodes = new ArrayList<>();

    @BeforeAll
    static void startProxy() throws Exception {
        capture = startCapture(logs);
        // no health checks in the way (a refusing node stays in the table); a node that says nothing for 5 s failed
        proxy = new TestProxy(dir, "distserve.proxy.healthIntervalSeconds = 3600\n"
                + "distserve.proxy.firstByteTimeoutSeconds = 5\n");
        base = proxy.base;
        port = proxy.port;
        http = proxy.http;
    }

    /** Adds an appender to the root logger that keeps every event in {@code into}. */
    static AbstractAppender startCapture(List<LogEvent> into) {
        AbstractAppender appender = new AbstractAppender("capture-" + System.identityHashCode(into), null, null, true,
                Property.EMPTY_ARRAY) {
            @Override
            public void append(LogEvent event) {
                into.add(event.toImmutable());
            }
        };
        appender.start();
        LoggerContext logContext = (LoggerContext) LogManager.getContext(false);
        logContext.getConfiguration().getRootLogger().addAppender(appender, Level.INFO, null);
        logContext.updateLoggers();
        return appender;
    }

    static void stopCapture(AbstractAppender appender) {
        LoggerContext logContext = (LoggerContext) LogManager.getContext(false);
        logContext.getConfiguration().getRootLogger().removeAppender(appender.getName());
        logContext.updateLoggers();
    }

    @AfterAll
    static void stopProxy() throws Exception {
        try {
            assertThat(logs).as("warnings of Vert.x's blocked-thread checker")
                    .noneMatch(e -> e.getMessage().getFormattedMessage().contains("has been blocked for"));
        } finally {
            proxy.close();
            stopCapture(capture);
        }
    }

    @AfterEach
    void nothingLeftInFlight() throws Exception {
        try {
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(status().path("nodes"))
                    .allSatisfy(n -> assertThat(n.path("in_flight").asInt()).as(n.toString()).isZero()));
        } finally {
            for (JsonNode n : status().path("nodes")) {
                post("/nodes/remove", "{\"url\":\"" + n.path("url").asText() + "\"}");
            }
            for (FakeNode node : nodes) {
                node.close();
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ tests

    @Test
    void aWholeAnswerAndAStreamAreForwardedAsTheyCameOnTheEventLoop() throws Exception {
        FakeNode node = node(FakeNode.json(200, FakeNode.COMPLETION));
        add(node, null);

        HttpResponse<String> whole = post("/v1/completions", REQUEST);
        assertThat(whole.statusCode()).isEqualTo(200);
        assertThat(whole.body()).isEqualTo(FakeNode.COMPLETION);
        assertThat(whole.headers().firstValue("Content-Length"))
                .hasValue(Integer.toString(FakeNode.COMPLETION.length()));
        assertThat(whole.headers().firstValue("Content-Type")).hasValue("application/json");
        // the request's own bytes, not a re-serialization
        assertThat(node.requests.get(0).text()).isEqualTo(REQUEST);
        assertThat(node.requests.get(0).path()).isEqualTo("/v1/completions");

        node.behave(FakeNode.stream(5, 20));
        List<String> events = stream("/v1/completions", STREAM_REQUEST);
        assertThat(events).hasSize(6);
        for (int i = 0; i < 5; i++) {
            assertThat(events.get(i)).isEqualTo(FakeNode.event(i).substring(6).strip());
        }
        assertThat(events.get(5)).isEqualTo("[DONE]");

        JsonNode n = node(node);
        assertThat(n.path("completed").asInt()).isEqualTo(2);
        assertThat(n.path("failures").asInt()).isZero();
        // each request's log line is written once its answer has ended, by the route's finally step: on the event
        // loop that received it (no worker thread anywhere on the Hybrid path)
        await().atMost(Duration.ofSeconds(5)).until(() -> requestLines(node).size() == 2);
        assertThat(requestLines(node)).extracting(LogEvent::getThreadName)
                .allSatisfy(t -> assertThat(t).startsWith("vert.x-eventloop-thread-"));
        // the token counts come from the node's usage (read after the client had its answer); the stream sent none
        assertThat(requestLines(node).get(0).getMessage().getFormattedMessage())
                .contains("stream=false prompt=4 completion=1 ");
        assertThat(requestLines(node).get(1).getMessage().getFormattedMessage())
                .contains("stream=true prompt=- completion=- ");

        // a stream whose node sends a usage chunk (stream_options.include_usage): its counts are logged
        node.behave(FakeNode.streamOf(List.of(
                "{\"choices\":[{\"index\":0,\"text\":\"a\"}],\"usage\":null}",
                "{\"choices\":[],\"usage\": {\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}")));
        assertThat(stream("/v1/completions", STREAM_REQUEST)).hasSize(3).last().isEqualTo("[DONE]");
        await().atMost(Duration.ofSeconds(5)).until(() -> requestLines(node).size() == 3);
        assertThat(requestLines(node).get(2).getMessage().getFormattedMessage())
                .contains("stream=true prompt=7 completion=2 ");
    }

    @Test
    void badInputIsA400WithAnOpenAiBodyAndNoNodeSeesIt() throws Exception {
        FakeNode node = node(FakeNode.json(200, FakeNode.COMPLETION));
        add(node, null);
        for (String bad : List.of("{\"model\":\"m\",\"prompt\":", "[1,2]", "{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":-1}")) {
            HttpResponse<String> r = post("/v1/completions", bad);
            assertThat(r.statusCode()).as(bad).isEqualTo(400);
            assertThat(JSON.readTree(r.body()).path("error").path("type").asText()).isEqualTo("invalid_request_error");
            assertThat(r.body()).doesNotContain("\tat ");
        }
        assertThat(node.requests).isEmpty();
        // a form body takes Camel's own consumer path (the event-loop consumer leaves forms to it); the proxy reads
        // no JSON from a form (the engines do, with LenientJsonBody): still a 400 with an OpenAI body
        HttpResponse<String> form = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .POST(HttpRequest.BodyPublishers.ofString(REQUEST)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(form.statusCode()).as(form.body()).isEqualTo(400);
        assertThat(JSON.readTree(form.body()).path("error").path("type").asText()).isEqualTo("invalid_request_error");
        assertThat(node.requests).isEmpty();
    }

    @Test
    void aNodeThatFailsBeforeItsFirstByteIsReplacedByAnother() throws Exception {
        FakeNode failing = node(FakeNode.json(500, "{\"error\":\"out of memory\"}"));
        FakeNode good = node(FakeNode.json(200, FakeNode.COMPLETION));
        add(failing, 100.0); // min_expected_latency: the fastest first
        add(good, 1.0);
        HttpResponse<String> r = post("/v1/completions", REQUEST);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(r.body()).isEqualTo(FakeNode.COMPLETION);
        assertThat(failing.requests).hasSize(1);
        assertThat(good.requests).hasSize(1);
        assertThat(node(failing).path("failures").asInt()).isEqualTo(1);
        assertThat(node(failing).path("last_request_error").asText()).contains("HTTP 500").contains("out of memory");

        // a node that refuses connections, and a stream
        post("/nodes/remove", "{\"url\":\"" + failing.url() + "\"}");
        String refusing = "http://127.0.0.1:" + freePort();
        add(refusing, 100.0);
        good.behave(FakeNode.stream(3, 0));
        List<String> events = stream("/v1/completions", STREAM_REQUEST);
        assertThat(events).hasSize(4).last().isEqualTo("[DONE]");
        assertThat(node(refusing).path("failures").asInt()).isEqualTo(1);
        assertThat(node(good).path("completed").asInt()).isEqualTo(2);

        // the refusing node alone: no other node to try, a 503 with an OpenAI error body
        post("/nodes/remove", "{\"url\":\"" + good.url() + "\"}");
        HttpResponse<String> none = post("/v1/completions", REQUEST);
        assertThat(none.statusCode()).isEqualTo(503);
        assertThat(JSON.readTree(none.body()).path("error").path("message").asText())
                .contains("No other healthy Hybrid node");
        assertThat(node(refusing).path("failures").asInt()).isEqualTo(2);
    }

    @Test
    void aStreamWhoseNodeDiesMovesToAnotherNodeCarryingItsTokens() throws Exception {
        FakeNode dying = node(FakeNode.resumable(5, 2));
        FakeNode other = node(FakeNode.resumable(5, -1));
        add(dying, 100.0);
        add(other, 1.0);
        List<String> events = stream("/v1/completions", STREAM_REQUEST);
        assertThat(events).as("dying %s (%d requests), other %s (%d requests)", dying.url(), dying.requests.size(),
                other.url(), other.requests.size()).hasSize(6);
        for (int i = 0; i < 5; i++) {
            JsonNode c = JSON.readTree(events.get(i));
            assertThat(c.path("choices").path(0).path("text").asText()).isEqualTo("t" + i);
            assertThat(c.path("id").asText()).isEqualTo("cmpl-node");
            assertThat(c.path("choices").path(0).has("token_ids")).as("the client did not ask for ids").isFalse();
        }
        assertThat(events.get(5)).isEqualTo("[DONE]");
        String resumed = new String(other.requests.get(0).body(), java.nio.charset.StandardCharsets.UTF_8);
        assertThat(JSON.readTree(resumed).path("resume_token_ids").toString()).isEqualTo("[100,101]");
        assertThat(JSON.readTree(resumed).path("return_token_ids").asBoolean()).isTrue();
        assertThat(node(dying).path("failures").asInt()).isEqualTo(1);
        assertThat(node(other).path("completed").asInt()).isEqualTo(1);
    }

    @Test
    void aStreamThatKeepsBreakingEndsWithAnErrorEventAndDoneAfterMaxMigrations() throws Exception {
        FakeNode a = node(FakeNode.resumable(9, 1));
        FakeNode b = node(FakeNode.resumable(9, 2));
        FakeNode c = node(FakeNode.resumable(9, 3));
        add(a, 100.0);
        add(b, 10.0);
        add(c, 1.0);
        List<String> events = stream("/v1/completions", STREAM_REQUEST);
        // t0 from a, t1 from b, t2 from c, then c dies too: two moves were all it had
        assertThat(events).hasSize(5);
        assertThat(JSON.readTree(events.get(2)).path("choices").path(0).path("text").asText()).isEqualTo("t2");
        assertThat(JSON.readTree(events.get(3)).path("error").path("message").asText()).contains("failed mid-stream");
        assertThat(events.get(4)).isEqualTo("[DONE]");
    }

    @Test
    void aWholeAnswerWhoseNodeDiesMidAnswerIsAskedOfAnotherNodeAndTheClientNeverKnows() throws Exception {
        FakeNode dying = node(FakeNode.halfAnswer());
        FakeNode other = node(FakeNode.json(200, FakeNode.COMPLETION));
        add(dying, 100.0);
        add(other, 1.0);
        HttpResponse<String> r = post("/v1/completions", REQUEST);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(r.body()).isEqualTo(FakeNode.COMPLETION);
        assertThat(dying.requests).hasSize(1);
        assertThat(other.requests).hasSize(1);
        // the same request, from scratch: the client had nothing of the first answer
        assertThat(other.requests.get(0).text()).isEqualTo(REQUEST);
        assertThat(node(dying).path("failures").asInt()).isEqualTo(1);
        assertThat(node(other).path("completed").asInt()).isEqualTo(1);
        assertThat(logs.stream().map(e -> e.getMessage().getFormattedMessage()))
                .anyMatch(m -> m.contains("request moved from " + dying.url() + " to " + other.url()));
    }

    @Test
    void aClientThatLeavesCancelsTheRequestToTheNode() throws Exception {
        FakeNode node = node(FakeNode.holdUntilClosed(true));
        add(node, null);
        try (Socket client = openRequest(STREAM_REQUEST)) {
            readUntil(client.getInputStream(), "data: ");
        }
        assertThat(node.cancelledLatch.await(5, TimeUnit.SECONDS)).as("the node's request was cancelled").isTrue();

        node.cancelledLatch = new java.util.concurrent.CountDownLatch(1);
        node.behave(FakeNode.holdUntilClosed(false));
        try (Socket client = openRequest(REQUEST)) {
            await().atMost(Duration.ofSeconds(5)).until(() -> node.requests.size() == 2);
            Thread.sleep(200);
        }
        assertThat(node.cancelledLatch.await(5, TimeUnit.SECONDS)).as("the node's request was cancelled").isTrue();
        await().atMost(Duration.ofSeconds(5)).until(() -> node(node).path("in_flight").asInt() == 0);
        // a client that left is no failure of the node
        assertThat(node(node).path("failures").asInt()).isZero();
        assertThat(node(node).path("completed").asInt()).isZero();
    }

    @Test
    void aClientThatReadsSlowlyHoldsBackTheNodeInsteadOfFillingTheProxysMemory() throws Exception {
        int batches = 6144; // 16 events of ~1 KiB each: 96 MiB in all
        StringBuilder batch = new StringBuilder();
        for (int i = 0; i < 16; i++) {
            batch.append("data: {\"pad\":\"").append("x".repeat(1000)).append("\"}\n\n");
        }
        String events = batch.toString();
        FakeNode node = node((request, out, socket) -> {
            FakeNode.streamHead(out);
            for (int i = 0; i < batches; i++) {
                FakeNode.chunk(out, events);
            }
            FakeNode.chunk(out, "data: [DONE]\n\n");
            out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        });
        add(node, null);
        long total = (long) batches * events.length();
        try (Socket client = openRequest(STREAM_REQUEST)) {
            // the client reads nothing: the node writes until every buffer on the way is full, then waits
            long[] seen = {-1};
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofSeconds(1)).until(() -> {
                long now = node.written.get();
                boolean stalled = now > 0 && now == seen[0];
                seen[0] = now;
                return stalled;
            });
            assertThat(seen[0]).as("bytes the node could write while the client read nothing").isLessThan(total / 2);
            // now read it all: every event arrives, then [DONE]
            InputStream in = client.getInputStream();
            byte[] buf = new byte[65536];
            long eventEnds = 0;
            int last = 0;
            StringBuilder tail = new StringBuilder();
            int n;
            while ((n = in.read(buf)) != -1) {
                for (int i = 0; i < n; i++) {
                    if (buf[i] == '\n' && last == '\n') {
                        eventEnds++;
                    }
                    last = buf[i];
                }
                tail.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
                if (tail.length() > 200) {
                    tail.delete(0, tail.length() - 200);
                }
                if (tail.indexOf("data: [DONE]") >= 0 && tail.toString().endsWith("0\r\n\r\n")) {
                    break;
                }
            }
            assertThat(tail.toString()).contains("data: [DONE]");
            assertThat(eventEnds).isEqualTo(batches * 16L + 1);
        }
        assertThat(node(node).path("completed").asInt()).isEqualTo(1);
    }

    /** What the final check relies on: Vert.x's blocked-thread warnings reach this log (here from a Vert.x of its own). */
    @Test
    void aBlockedEventLoopWouldBeHeard() throws Exception {
        io.vertx.core.Vertx vertx = io.vertx.core.Vertx.vertx(new io.vertx.core.VertxOptions()
                .setBlockedThreadCheckInterval(20).setBlockedThreadCheckIntervalUnit(TimeUnit.MILLISECONDS)
                .setMaxEventLoopExecuteTime(50).setMaxEventLoopExecuteTimeUnit(TimeUnit.MILLISECONDS));
        int before = logs.size();
        try {
            vertx.runOnContext(v -> {
                try {
                    Thread.sleep(400); // what a blocking call on the event loop does
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            await().atMost(Duration.ofSeconds(10)).until(() -> logs.subList(before, logs.size()).stream()
                    .anyMatch(e -> e.getMessage().getFormattedMessage().contains("has been blocked for")));
        } finally {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
            // this Vert.x's own warnings are not the proxy's
            logs.removeIf(e -> e.getMessage().getFormattedMessage().contains("has been blocked for")
                    && logs.indexOf(e) >= before);
        }
    }

    // ------------------------------------------------------------------------------------------------ helpers

    FakeNode node(FakeNode.Behavior behavior) throws IOException {
        FakeNode node = new FakeNode(behavior);
        nodes.add(node);
        return node;
    }

    static void add(FakeNode node, Double speed) throws Exception {
        add(node.url(), speed);
    }

    static void add(String url, Double speed) throws Exception {
        HttpResponse<String> r = post("/nodes/add", "{\"url\":\"" + url + "\",\"status\":{\"role\":\"Hybrid\","
                + "\"models\":[\"m\"]" + (speed == null ? "" : ",\"speed\":" + speed) + "}}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    }

    static JsonNode status() throws Exception {
        return JSON.readTree(get("/nodes/status").body());
    }

    static JsonNode node(FakeNode node) throws Exception {
        return node(node.url());
    }

    static JsonNode node(String url) throws Exception {
        for (JsonNode n : status().path("nodes")) {
            if (n.path("url").asText().equals(url)) {
                return n;
            }
        }
        throw new AssertionError("no node " + url + " in " + status());
    }

    static List<LogEvent> requestLines(FakeNode node) {
        return logs.stream().filter(e -> e.getLoggerName().equals("io.distserve.requests"))
                .filter(e -> e.getMessage().getFormattedMessage().contains(node.url())).toList();
    }

    static HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return proxy.get(path);
    }

    static HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
        return proxy.post(path, body);
    }

    /** The data payloads of a streamed answer, [DONE] included. */
    static List<String> stream(String path, String body) throws Exception {
        HttpResponse<java.util.stream.Stream<String>> r = http.send(HttpRequest.newBuilder(URI.create(base + path))
                .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofLines());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type").orElse("")).startsWith("text/event-stream");
        return r.body().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
    }

    static Socket openRequest(String body) throws IOException {
        Socket socket = new Socket("127.0.0.1", port);
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        OutputStream out = socket.getOutputStream();
        out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: " + bytes.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.flush();
        return socket;
    }

    static void readUntil(InputStream in, String marker) throws IOException {
        StringBuilder seen = new StringBuilder();
        int c;
        while ((c = in.read()) != -1) {
            seen.append((char) c);
            if (seen.indexOf(marker) >= 0) {
                return;
            }
        }
        throw new AssertionError("the stream ended before '" + marker + "': " + seen);
    }

    static int freePort() throws IOException {
        return TestProxy.freePort();
    }
}
