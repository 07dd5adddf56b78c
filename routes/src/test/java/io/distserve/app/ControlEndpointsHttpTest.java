package io.distserve.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.registry.NodeRole;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import javax.management.MBeanServer;
import javax.management.ObjectName;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The PD control endpoints over real HTTP on two engine nodes in this JVM (a Prefill and a Decode, each its own
 * Camel Main with its own JMX name), both started with --api-keys: every control endpoint is 401 without the key,
 * and the whole DistServe path works with it, including the decode engine's free_cache acknowledgement (which must
 * carry the key: LMDeploy's internal calls sent none). Also: SSE from a migrated request, leases in /metrics and JMX.
 */
class ControlEndpointsHttpTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String KEY = "sk-test-key";
    private static final MBeanServer MBEANS = ManagementFactory.getPlatformMBeanServer();

    @TempDir
    static Path dir;

    static Server prefill;
    static Server decode;
    static final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    /** One engine node on a free port. */
    static final class Server {
        final EngineApplication app;
        final Thread thread;
        final String base;
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Server(Path model, NodeRole role) throws Exception {
            int port = freePort();
            base = "http://127.0.0.1:" + port;
            Path props = dir.resolve(role + ".properties");
            Files.writeString(props, "camel.main.name = distserve-" + role.name().toLowerCase() + "\n"
                    + "distserve.engine.drainTimeoutSeconds = 2\n");
            EngineOptions engine = new EngineOptions("cpu", 16, 0.5, 256, 1, EngineConfig.defaults());
            app = new EngineApplication(new EngineServerSettings(model, "tiny", "127.0.0.1", port, role, null,
                    List.of(KEY), engine, null, null, props, "tcp", 0, Duration.ofSeconds(60)));
            thread = new Thread(() -> {
                try {
                    app.run();
                } catch (Throwable t) {
                    failure.set(t);
                }
            }, "engine-" + role);
            thread.setDaemon(true);
            thread.start();
            await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100)).until(() -> {
                if (failure.get() != null) {
                    throw new IllegalStateException("the server failed to start", failure.get());
                }
                try {
                    return send("GET", "/health", null, false).statusCode() == 200;
                } catch (IOException e) {
                    return false;
                }
            });
        }

        HttpResponse<String> send(String method, String path, String body, boolean withKey)
                throws IOException, InterruptedException {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(60));
            if (withKey) {
                b.header("Authorization", "Bearer " + KEY);
            }
            if (body == null) {
                b.method(method, HttpRequest.BodyPublishers.noBody());
            } else {
                b.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body));
            }
            return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        }

        JsonNode ok(String method, String path, String body) throws Exception {
            HttpResponse<String> r = send(method, path, body, true);
            assertThat(r.statusCode()).as(method + " " + path + ": " + r.body()).isEqualTo(200);
            return JSON.readTree(r.body());
        }

        String engineId() {
            return app.node().engineId();
        }

        double metric(String sample) throws Exception {
            for (String line : send("GET", "/metrics", null, true).body().split("\n")) {
                if (line.startsWith(sample + " ")) {
                    return Double.parseDouble(line.substring(sample.length() + 1).trim());
                }
            }
            throw new AssertionError("no " + sample + " in /metrics");
        }

        Object mbean(String attribute) throws Exception {
            for (ObjectName name : MBEANS.queryNames(
                    new ObjectName("org.apache.camel:context=*,type=services,name=DistServeEngine"), null)) {
                if (engineId().equals(MBEANS.getAttribute(name, "EngineId"))) {
                    return MBEANS.getAttribute(name, attribute);
                }
            }
            throw new AssertionError("no engine MBean for " + engineId());
        }

        void stop() throws InterruptedException {
            app.stop();
            thread.join(30_000);
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @BeforeAll
    static void start() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 3, null).withThreads(1).writeTo(model);
        prefill = new Server(model, NodeRole.Prefill);
        decode = new Server(model, NodeRole.Decode);
    }

    @AfterAll
    static void stop() throws Exception {
        if (decode != null) {
            decode.stop();
        }
        if (prefill != null) {
            prefill.stop();
        }
    }

    @Test
    void everyControlEndpointNeedsTheKey() throws Exception {
        String[][] calls = {
                {"GET", "/distserve/engine_info", null},
                {"POST", "/distserve/p2p_initialize", "{\"remote_engine_id\":\"x\"}"},
                {"POST", "/distserve/p2p_connect", "{\"remote_engine_id\":\"x\"}"},
                {"POST", "/distserve/p2p_drop_connect", "{\"remote_engine_id\":\"x\"}"},
                {"POST", "/distserve/free_cache", "{\"remote_engine_id\":\"x\",\"remote_session_id\":\"y\"}"},
                {"GET", "/distserve/prefix_cache", null},
                {"GET", "/distserve/tokenizer", null},
        };
        for (String[] c : calls) {
            HttpResponse<String> r = prefill.send(c[0], c[1], c[2], false);
            assertThat(r.statusCode()).as(c[1]).isEqualTo(401);
            assertThat(JSON.readTree(r.body()).path("error").path("code").asText()).isEqualTo("invalid_api_key");
            assertThat(r.body()).doesNotContain("token");
        }
        JsonNode info = prefill.ok("GET", "/distserve/engine_info", null);
        assertThat(info.path("engine_id").asText()).isEqualTo(prefill.engineId());
        assertThat(info.path("role").asText()).isEqualTo("Prefill");
        assertThat(info.path("block_size").asInt()).isEqualTo(16);
        assertThat(info.path("num_blocks").asInt()).isEqualTo(256);
        JsonNode init = prefill.ok("POST", "/distserve/p2p_initialize", "{\"remote_engine_id\":\"x\"}");
        assertThat(init.path("engine_id").asText()).isEqualTo(prefill.engineId());
        assertThat(init.path("endpoint").path("transport").asText()).isEqualTo("tcp");
        assertThat(prefill.ok("POST", "/distserve/p2p_drop_connect", "{\"remote_engine_id\":\"x\"}")
                .path("dropped").asBoolean()).isFalse();
        assertThat(prefill.send("POST", "/distserve/free_cache",
                "{\"remote_engine_id\":\"" + prefill.engineId() + "\",\"remote_session_id\":\"y\"}", true).body())
                .isEqualTo("{\"freed\":false}");
        assertThat(prefill.send("POST", "/distserve/engine_info", null, true).statusCode())
                .as("GET only").isNotEqualTo(200);
    }

    /**
     * The prefix-cache feed: a snapshot for a reader without this epoch, then only the changes since its cursor;
     * a repeated prompt reports cached tokens; the tokenizer files are the model folder's.
     */
    @Test
    void thePrefixCacheFeedAndTheTokenizerFiles() throws Exception {
        JsonNode first = prefill.ok("GET", "/distserve/prefix_cache", null);
        assertThat(first.path("epoch").asText()).isEqualTo(prefill.engineId());
        assertThat(first.path("enabled").asBoolean()).isTrue();
        assertThat(first.path("block_size").asInt()).isEqualTo(16);
        assertThat(first.path("hash_salt").asText()).hasSize(16);
        assertThat(first.path("reset").asBoolean()).isTrue();
        long cursor = first.path("next").asLong();
        StringBuilder ids = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            ids.append(i == 0 ? "" : ",").append(5 + (i * 17) % 300);
        }
        String body = "{\"model\":\"tiny\",\"prompt\":[" + ids + "],\"max_tokens\":1,\"temperature\":0}";
        JsonNode a = prefill.ok("POST", "/v1/completions", body);
        JsonNode delta = prefill.ok("GET", "/distserve/prefix_cache?epoch=" + prefill.engineId() + "&since=" + cursor,
                null);
        assertThat(delta.path("reset").asBoolean()).isFalse();
        assertThat(delta.path("stored").size()).as(delta.toString()).isEqualTo(2); // 40 tokens: 2 full blocks
        JsonNode b = prefill.ok("POST", "/v1/completions", body);
        assertThat(a.path("usage").path("prompt_tokens_details").path("cached_tokens").asInt()).isZero();
        assertThat(b.path("usage").path("prompt_tokens_details").path("cached_tokens").asInt()).isEqualTo(32);
        assertThat(b.path("distserve").path("cached_tokens").asInt()).isEqualTo(32);
        assertThat(prefill.metric("distserve_prefix_cache_hit_tokens_total")).isGreaterThanOrEqualTo(32);
        assertThat(prefill.metric("distserve_prefix_cache_blocks")).isGreaterThanOrEqualTo(2);
        for (JsonNode session : new JsonNode[] {a, b}) {
            prefill.ok("POST", "/distserve/free_cache", "{\"remote_engine_id\":\"" + prefill.engineId()
                    + "\",\"remote_session_id\":\"" + session.path("distserve").path("session_id").asText() + "\"}");
        }
        assertThat(prefill.send("GET", "/distserve/prefix_cache?since=x", null, true).statusCode()).isEqualTo(400);

        JsonNode tok = prefill.ok("GET", "/distserve/tokenizer", null);
        assertThat(tok.path("model").asText()).isEqualTo("tiny");
        assertThat(tok.path("files").path("tokenizer.json").asText())
                .isEqualTo(java.nio.file.Files.readString(dir.resolve("tiny").resolve("tokenizer.json")));
    }

    @Test
    void theDistServePathWorksWithKeysAndStreamsFromTheDecodeEngine() throws Exception {
        connect();
        JsonNode info = decode.ok("GET", "/distserve/engine_info", null);
        assertThat(info.path("peers").toString()).contains(prefill.engineId());

        String body = "{\"model\":\"tiny\",\"prompt\":\"Shanghai is a city that has grown from a fishing village\","
                + "\"max_tokens\":10,\"temperature\":0,\"ignore_eos\":true}";
        // Decode without migration_request: a normal prefill, i.e. the Hybrid answer.
        JsonNode expected = decode.ok("POST", "/v1/completions", body);

        double freedBefore = prefill.metric("distserve_prefill_leases_freed_total");
        JsonNode p = prefill.ok("POST", "/v1/completions", body);
        JsonNode d = p.path("distserve");
        assertThat(d.path("block_ids").size()).isPositive();
        assertThat(prefill.metric("distserve_prefill_leases")).isEqualTo(1.0);
        assertThat(prefill.mbean("KvLeases")).isEqualTo(1);
        assertThat(prefill.mbean("KvLeasedBlocks")).isEqualTo(d.path("block_ids").size());

        ObjectNode second = (ObjectNode) JSON.readTree(body);
        second.put("stream", true);
        second.putObject("stream_options").put("include_usage", true);
        ObjectNode mr = second.putObject("migration_request");
        mr.put("protocol", "tcp");
        mr.put("remote_engine_id", d.path("engine_id").asText());
        mr.put("remote_session_id", d.path("session_id").asText());
        mr.set("remote_block_ids", d.path("block_ids"));
        mr.put("remote_token_id", d.path("first_token_id").asInt());
        mr.set("prompt_token_ids", d.path("prompt_token_ids"));
        HttpResponse<String> stream = decode.send("POST", "/v1/completions", second.toString(), true);
        assertThat(stream.statusCode()).as(stream.body()).isEqualTo(200);
        assertThat(stream.headers().firstValue("Content-Type").orElse("")).startsWith("text/event-stream");
        StringBuilder text = new StringBuilder();
        JsonNode usage = null;
        String last = null;
        for (String line : stream.body().split("\n")) {
            if (!line.startsWith("data: ")) {
                continue;
            }
            last = line.substring(6);
            if (last.equals("[DONE]")) {
                continue;
            }
            JsonNode chunk = JSON.readTree(last);
            assertThat(chunk.has("error")).as(last).isFalse();
            if (chunk.path("usage").isObject()) {
                usage = chunk.path("usage");
            }
            for (JsonNode c : chunk.path("choices")) {
                text.append(c.path("text").asText());
            }
        }
        assertThat(last).isEqualTo("[DONE]");
        assertThat(text.toString()).isEqualTo(expected.path("choices").path(0).path("text").asText());
        assertThat(usage).isEqualTo(expected.path("usage"));

        // The decode engine acknowledged with the key: the lease ended by free_cache, not by expiry.
        await().atMost(Duration.ofSeconds(10)).until(() -> prefill.metric("distserve_prefill_leases") == 0.0);
        assertThat(prefill.metric("distserve_prefill_leases_freed_total")).isEqualTo(freedBefore + 1);
        assertThat(prefill.mbean("KvLeases")).isEqualTo(0);
        assertThat(prefill.mbean("KvLeasesExpired")).isEqualTo(0L);
        await().atMost(Duration.ofSeconds(10)).until(() -> (Integer) prefill.mbean("KvBlocksUsed") == 0
                && (Integer) decode.mbean("KvBlocksUsed") == 0);
    }

    @Test
    void aLeaseEndsByFreeCacheOverHttp() throws Exception {
        JsonNode p = prefill.ok("POST", "/v1/chat/completions",
                "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":5}");
        String session = p.path("distserve").path("session_id").asText();
        assertThat(session).isEqualTo(p.path("id").asText());
        assertThat(prefill.mbean("KvLeases")).isEqualTo(1);
        String free = "{\"remote_engine_id\":\"" + prefill.engineId() + "\",\"remote_session_id\":\"" + session + "\"}";
        assertThat(prefill.send("POST", "/distserve/free_cache", free, false).statusCode()).isEqualTo(401);
        assertThat(prefill.mbean("KvLeases")).isEqualTo(1);
        assertThat(prefill.ok("POST", "/distserve/free_cache", free).path("freed").asBoolean()).isTrue();
        assertThat(prefill.ok("POST", "/distserve/free_cache", free).path("freed").asBoolean()).isFalse();
        assertThat(prefill.mbean("KvLeases")).isEqualTo(0);
        assertThat(prefill.mbean("KvBlocksUsed")).isEqualTo(0);
    }

    /** The proxy's warmup, by HTTP with the key: p2p_initialize on P, p2p_connect on D. */
    static void connect() throws Exception {
        JsonNode init = prefill.ok("POST", "/distserve/p2p_initialize",
                "{\"remote_engine_id\":\"" + decode.engineId() + "\"}");
        ObjectNode c = JSON.createObjectNode();
        c.put("remote_engine_id", prefill.engineId());
        c.put("remote_url", prefill.base);
        c.set("remote_endpoint", init.get("endpoint"));
        c.set("remote_kv_layout", init.get("kv_layout"));
        assertThat(decode.send("POST", "/distserve/p2p_connect", c.toString(), false).statusCode()).isEqualTo(401);
        JsonNode connected = decode.ok("POST", "/distserve/p2p_connect", c.toString());
        assertThat(connected.path("connected").asText()).isEqualTo(prefill.engineId());
    }
}
