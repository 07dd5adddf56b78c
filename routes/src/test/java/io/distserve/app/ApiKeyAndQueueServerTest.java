package io.distserve.app;

import static io.distserve.app.TestEngineServer.chat;
import static io.distserve.app.TestEngineServer.completion;
import static io.distserve.app.TestEngineServer.json;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * An engine node with {@code --api-keys} and the smallest scheduler ({@code --max-batch-size 1 --max-queue 1}):
 * authentication on every route but /health, a full queue answered with 429, and JMX drain (last: it ends serving).
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ApiKeyAndQueueServerTest {

    static final String KEY = "sk-test-first";
    static final String OTHER_KEY = "sk-test-second";

    @TempDir
    static Path dir;

    static TestEngineServer server;

    @BeforeAll
    static void start() throws Exception {
        server = new TestEngineServer(dir, List.of(KEY, OTHER_KEY), 1, 1);
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    private static HttpResponse<String> send(String method, String path, String authorization, String body)
            throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(server.base + path)).timeout(Duration.ofSeconds(30));
        if (authorization != null) {
            b.header("Authorization", authorization);
        }
        if (body != null) {
            b.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body));
        } else {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        }
        return server.http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    @Order(1)
    void everyRouteButHealthNeedsABearerKey() throws Exception {
        String[][] routes = {
                {"GET", "/v1/models", null},
                {"POST", "/v1/completions", completion("hi", 2, false, null)},
                {"POST", "/v1/completions", completion("hi", 2, true, null)},
                {"POST", "/v1/chat/completions", chat("hi", 2, false, null)},
                {"POST", "/v1/chat/completions", chat("hi", 2, true, null)},
                {"GET", "/metrics", null},
        };
        for (String[] route : routes) {
            for (String auth : new String[] {null, "Bearer wrong-key", "Bearer " + KEY + "x", "Basic " + KEY, KEY,
                    "Bearer "}) {
                HttpResponse<String> r = send(route[0], route[1], auth, route[2]);
                assertThat(r.statusCode()).as("%s %s with %s", route[0], route[1], auth).isEqualTo(401);
                JsonNode error = json(r).path("error");
                assertThat(error.path("code").asText()).isEqualTo("invalid_api_key");
                assertThat(error.path("type").asText()).isEqualTo("invalid_request_error");
                assertThat(error.path("message").asText()).contains("Bearer");
            }
            for (String key : new String[] {KEY, OTHER_KEY}) {
                HttpResponse<String> ok = send(route[0], route[1], "Bearer " + key, route[2]);
                assertThat(ok.statusCode()).as("%s %s with a valid key: %s", route[0], route[1], ok.body())
                        .isEqualTo(200);
            }
        }
        assertThat(send("GET", "/health", null, null).statusCode()).isEqualTo(200);
    }

    /** One running, one waiting: the third request is refused with 429 whether streamed or not. */
    @Test
    @Order(2)
    void fullQueueIs429() throws Exception {
        String longRun = completion("long", 4000, true, "\"ignore_eos\":true");
        try (Socket running = server.openRequest("/v1/completions", longRun)) {
            BufferedReader reader = new BufferedReader(new InputStreamReader(running.getInputStream(),
                    StandardCharsets.UTF_8));
            String line;
            while ((line = reader.readLine()) != null && !line.startsWith("data: ")) {
                // headers
            }
            assertThat((Integer) server.engineAttribute("Running")).isEqualTo(1);
            try (Socket waiting = server.openRequest("/v1/chat/completions", chat("waiting", 4000, true,
                    "\"ignore_eos\":true"))) {
                await().atMost(Duration.ofSeconds(10)).until(() -> (Integer) server.engineAttribute("Waiting") == 1);
                for (String body : new String[] {completion("third", 4, false, null), completion("third", 4, true, null)}) {
                    HttpResponse<String> r = server.post("/v1/completions", body);
                    assertThat(r.statusCode()).as(r.body()).isEqualTo(429);
                    JsonNode error = json(r).path("error");
                    assertThat(error.path("type").asText()).isEqualTo("rate_limit_error");
                    assertThat(error.path("code").asText()).isEqualTo("queue_full");
                }
                HttpResponse<String> chatRefused = server.post("/v1/chat/completions", chat("third", 4, false, null));
                assertThat(chatRefused.statusCode()).isEqualTo(429);
                assertThat(server.metric("distserve_sequences_waiting")).isEqualTo(1.0);
                assertThat(server.metric("distserve_sequences_running")).isEqualTo(1.0);
            }
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> (Integer) server.engineAttribute("KvBlocksUsed") == 0
                && (Integer) server.engineAttribute("Waiting") == 0);
        assertThat(server.post("/v1/completions", completion("room again", 4, false, null)).statusCode())
                .isEqualTo(200);
        assertThat(server.get("/metrics").body())
                .containsPattern("distserve_requests_total\\{route=\"completions\",status=\"429\"} [1-9]");
    }

    /** JMX drain(): no new requests (503, health 503), the engine state says so. */
    @Test
    @Order(Integer.MAX_VALUE)
    void jmxDrainStopsAcceptingWork() throws Exception {
        TestEngineServer.MBEANS.invoke(server.engineMBean(), "drain", new Object[0], new String[0]);
        assertThat(server.engineAttribute("State")).isEqualTo("DRAINING");
        HttpResponse<String> health = server.get("/health");
        assertThat(health.statusCode()).isEqualTo(503);
        assertThat(json(health).path("status").asText()).isEqualTo("draining");
        HttpResponse<String> refused = server.post("/v1/completions", completion("too late", 4, false, null));
        assertThat(refused.statusCode()).isEqualTo(503);
        assertThat(json(refused).path("error").path("type").asText()).isEqualTo("service_unavailable");
    }
}
