package io.distserve.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * A whole DistServe cluster as real processes on loopback, every one with {@code --api-keys}: a proxy
 * ({@code --serving-strategy DistServe}), two Prefill and two Decode engines registered through {@code --proxy-url},
 * and a Hybrid engine on the same model folder as the reference. In order: DistServe answers exactly as Hybrid at
 * temperature 0 (raw HTTP and the OpenAI Node SDK, completions and chat, whole and streamed); bad requests are
 * answered by the proxy alone; keys are needed by clients and sent by the proxy on its internal calls; the proxy
 * restarts onto its node table and the engines' existing KV connections; a decode node killed mid-stream; a prefill
 * node killed.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ProxyDistServeIT {

    static final String KEY = "sk-proxy-it";

    @TempDir
    static Path dir;

    static int proxyPort;
    static Path nodeTable;
    static Path proxyProps;
    static ServerProcess proxy;
    static ServerProcess hybrid;
    static final List<ServerProcess> prefills = new ArrayList<>();
    static final List<ServerProcess> decodes = new ArrayList<>();

    @BeforeAll
    static void startCluster() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 7, null).withThreads(1).writeTo(model);
        Path engineProps = dir.resolve("engine.properties");
        Files.writeString(engineProps, "distserve.engine.proxyRegistrationIntervalSeconds = 2\n");
        proxyProps = dir.resolve("proxy.properties");
        Files.writeString(proxyProps, """
                distserve.proxy.healthIntervalSeconds = 1
                distserve.proxy.healthTimeoutSeconds = 1
                distserve.proxy.unhealthyAfterFailures = 2
                """);
        nodeTable = dir.resolve("nodes.json");
        proxyPort = ServerProcess.freePort();
        proxy = startProxy("distserve-proxy");

        String[] common = {"--api-keys", KEY, "--cache-max-entry-count", "0.1", "--log-level", "INFO",
                "--properties", engineProps.toString()};
        List<ServerProcess> all = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            prefills.add(ServerProcess.launchApiServer("prefill-" + i, ServerProcess.freePort(), model,
                    with(common, "--role", "Prefill", "--proxy-url", "http://127.0.0.1:" + proxyPort)));
            decodes.add(ServerProcess.launchApiServer("decode-" + i, ServerProcess.freePort(), model,
                    with(common, "--role", "Decode", "--proxy-url", "http://127.0.0.1:" + proxyPort)));
        }
        hybrid = ServerProcess.launchApiServer("hybrid", ServerProcess.freePort(), model, common);
        all.addAll(prefills);
        all.addAll(decodes);
        all.add(hybrid);
        for (ServerProcess s : all) {
            s.healthy();
        }
        await().atMost(Duration.ofSeconds(30)).untilAsserted(() -> assertThat(healthyNodes()).isEqualTo(4));
    }

    static ServerProcess startProxy(String name) throws Exception {
        return ServerProcess.proxy(name, proxyPort, "--serving-strategy", "DistServe",
                "--routing-strategy", "min_expected_latency", "--api-keys", KEY, "--node-table", nodeTable.toString(),
                "--properties", proxyProps.toString(), "--log-level", "INFO");
    }

    static String[] with(String[] a, String... b) {
        List<String> out = new ArrayList<>(List.of(a));
        out.addAll(List.of(b));
        return out.toArray(String[]::new);
    }

    @AfterAll
    static void stopCluster() throws Exception {
        List<ServerProcess> all = new ArrayList<>(prefills);
        all.addAll(decodes);
        all.add(hybrid);
        all.add(proxy);
        for (ServerProcess s : all) {
            if (s != null) {
                s.kill(); // no drain needed: nothing is running
            }
        }
    }

    static long healthyNodes() throws Exception {
        long n = 0;
        for (JsonNode node : nodes()) {
            n += node.path("health").asText().equals("HEALTHY") ? 1 : 0;
        }
        return n;
    }

    static JsonNode nodes() throws Exception {
        return Http.getJson(proxy.base + "/nodes/status", KEY).path("nodes");
    }

    static JsonNode node(ServerProcess s) throws Exception {
        for (JsonNode node : nodes()) {
            if (node.path("url").asText().equals(s.base)) {
                return node;
            }
        }
        throw new AssertionError("no node " + s.base + " in " + nodes());
    }

    // ---------------------------------------------------------------------------------------------- requests

    static String completion(String prompt, int maxTokens, boolean stream) {
        return "{\"model\":\"tiny\",\"prompt\":" + quote(prompt) + ",\"max_tokens\":" + maxTokens
                + ",\"temperature\":0,\"ignore_eos\":true,\"stream\":" + stream
                + (stream ? ",\"stream_options\":{\"include_usage\":true}" : "") + "}";
    }

    static String chat(String content, int maxTokens, boolean stream) {
        return "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":" + quote(content)
                + "}],\"max_tokens\":" + maxTokens + ",\"temperature\":0,\"ignore_eos\":true,\"stream\":" + stream
                + (stream ? ",\"stream_options\":{\"include_usage\":true}" : "") + "}";
    }

    static String quote(String s) {
        try {
            return Http.JSON.writeValueAsString(s);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Sends the request to the proxy and to the Hybrid node; asserts the same text and usage; returns the text. */
    static String sameAsHybrid(String path, String body, boolean stream) throws Exception {
        HttpResponse<String> viaProxy = Http.post(proxy.base + path, KEY, body);
        HttpResponse<String> direct = Http.post(hybrid.base + path, KEY, body);
        assertThat(viaProxy.statusCode()).as(viaProxy.body()).isEqualTo(200);
        assertThat(direct.statusCode()).as(direct.body()).isEqualTo(200);
        if (stream) {
            List<String> payloads = Http.ssePayloads(viaProxy.body());
            assertThat(payloads).last().isEqualTo("[DONE]");
            assertThat(payloads).noneMatch(p -> p.contains("\"error\""));
            assertThat(viaProxy.headers().firstValue("Content-Type")).hasValueSatisfying(
                    t -> assertThat(t).startsWith("text/event-stream"));
        }
        String text = Http.text(viaProxy.body(), stream);
        assertThat(text).as("%s %s via the proxy", path, body).isNotEmpty().isEqualTo(Http.text(direct.body(), stream));
        assertThat(Http.usage(viaProxy.body(), stream)).isEqualTo(Http.usage(direct.body(), stream));
        return text;
    }

    // --------------------------------------------------------------------------------------------- the tests

    @Test
    @Order(1)
    void distServeAnswersExactlyAsHybridOverHttp() throws Exception {
        String[] prompts = {"Shanghai is a city that ", "Once upon a time", "The quick brown fox", "1, 2, 3,"};
        for (String prompt : prompts) {
            String whole = sameAsHybrid("/v1/completions", completion(prompt, 24, false), false);
            String streamed = sameAsHybrid("/v1/completions", completion(prompt, 24, true), true);
            assertThat(streamed).isEqualTo(whole);
            String chatWhole = sameAsHybrid("/v1/chat/completions", chat(prompt, 24, false), false);
            String chatStreamed = sameAsHybrid("/v1/chat/completions", chat(prompt, 24, true), true);
            assertThat(chatStreamed).isEqualTo(chatWhole);
        }
        // answers of one token (the prefill's answer is the whole answer) and longer ones (several KV blocks)
        sameAsHybrid("/v1/completions", completion("one", 1, false), false);
        sameAsHybrid("/v1/chat/completions", chat("one", 1, true), true);
        sameAsHybrid("/v1/completions", completion("x".repeat(150), 100, true), true);
        sameAsHybrid("/v1/chat/completions", chat("y".repeat(150), 100, false), false);
        // a stream that does not ask for usage gets none (the proxy asks the decode node for it, for its log line)
        String noUsage = completion("Once upon a time", 12, true).replace(",\"stream_options\":{\"include_usage\":true}", "");
        assertThat(noUsage).doesNotContain("stream_options");
        sameAsHybrid("/v1/completions", noUsage, true);
        assertThat(Http.ssePayloads(Http.post(proxy.base + "/v1/completions", KEY, noUsage).body()))
                .noneMatch(p -> p.contains("usage"));
        int prompt = Http.usage(Http.post(hybrid.base + "/v1/completions", KEY,
                completion("Once upon a time", 12, false)).body(), false).path("prompt_tokens").asInt();
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(proxy.output())
                .contains("stream=true prompt=" + prompt + " completion=12 "));

        // every node took part; every lease was freed by its decode node (none expired, none left)
        for (JsonNode node : nodes()) {
            assertThat(node.path("completed").asLong()).as("%s", node).isPositive();
            assertThat(node.path("failures").asLong()).as("%s", node).isZero();
        }
        for (ServerProcess p : prefills) {
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                assertThat(Http.metric(p.base, KEY, "distserve_prefill_leases")).isZero();
                assertThat(Http.metric(p.base, KEY, "distserve_kv_blocks_used")).isZero();
            });
            assertThat(Http.metric(p.base, KEY, "distserve_prefill_leases_expired_total")).isZero();
            assertThat(Http.metric(p.base, KEY, "distserve_prefill_leases_freed_total")).isPositive();
        }
    }

    @Test
    @Order(2)
    void openAiNodeSdkThroughTheProxyAnswersAsHybrid() throws Exception {
        JsonNode out = EngineNodeProcessIT.runOpenAiNodeClient(proxy.base, KEY, "openai-node-client-proxy");

        assertThat(out.path("models")).extracting(JsonNode::asText).containsExactly("tiny");
        // the same requests as the script's, to the Hybrid node
        JsonNode ref = Http.JSON.readTree(Http.post(hybrid.base + "/v1/completions", KEY,
                "{\"model\":\"tiny\",\"prompt\":\"Shanghai is a city that \",\"max_tokens\":24,\"temperature\":0,"
                        + "\"ignore_eos\":true}").body());
        JsonNode refChat = Http.JSON.readTree(Http.post(hybrid.base + "/v1/chat/completions", KEY,
                "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Write a haiku about the sea.\"}],"
                        + "\"max_tokens\":24,\"temperature\":0,\"ignore_eos\":true}").body());
        String refText = ref.path("choices").get(0).path("text").asText();
        String refChatText = refChat.path("choices").get(0).path("message").path("content").asText();

        assertThat(out.path("completion").path("text").asText()).isNotEmpty().isEqualTo(refText);
        assertThat(out.path("completion").path("id").asText()).startsWith("cmpl-");
        assertThat(out.path("completion").path("finishReason").asText()).isEqualTo("length");
        assertThat(out.path("completion").path("usage")).isEqualTo(ref.path("usage"));
        assertThat(out.path("completionStream").path("text").asText()).isEqualTo(refText);
        assertThat(out.path("completionStream").path("usage")).isEqualTo(ref.path("usage"));
        assertThat(out.path("completionStream").path("finishReason").asText()).isEqualTo("length");
        assertThat(out.path("completionStream").path("chunks").asInt()).isGreaterThan(2);

        assertThat(out.path("chat").path("text").asText()).isNotEmpty().isEqualTo(refChatText);
        assertThat(out.path("chat").path("id").asText()).startsWith("chatcmpl-");
        assertThat(out.path("chat").path("role").asText()).isEqualTo("assistant");
        assertThat(out.path("chat").path("usage")).isEqualTo(refChat.path("usage"));
        assertThat(out.path("chatStream").path("text").asText()).isEqualTo(refChatText);
        assertThat(out.path("chatStream").path("role").asText()).isEqualTo("assistant");
        assertThat(out.path("chatStream").path("usage")).isEqualTo(refChat.path("usage"));
        assertThat(out.path("chatStreamHelper").path("text").asText()).isEqualTo(refChatText);

        assertThat(out.path("wrongKeyError").path("status").asInt()).isEqualTo(401);
        assertThat(out.path("wrongKeyError").path("name").asText()).isEqualTo("AuthenticationError");
        assertThat(out.path("badRequestError").path("status").asInt()).isEqualTo(400);
        assertThat(out.path("badRequestError").path("name").asText()).isEqualTo("BadRequestError");
        assertThat(out.path("badRequestError").path("param").asText()).isEqualTo("top_p");
        // an unknown model: 404 model_not_found, as OpenAI, vLLM and LMDeploy answer (the engines too)
        assertThat(out.path("unknownModelError").path("status").asInt()).isEqualTo(404);
        assertThat(out.path("unknownModelError").path("name").asText()).isEqualTo("NotFoundError");
        assertThat(out.path("unknownModelError").path("code").asText()).isEqualTo("model_not_found");
        assertThat(out.path("unknownModelError").path("param").asText()).isEqualTo("model");
        assertThat(out.path("unknownModelError").path("message").asText()).contains("no-such-model");
    }

    @Test
    @Order(3)
    void badRequestsAreAnsweredByTheProxyAloneNoNodeSeesThem() throws Exception {
        List<ServerProcess> engines = new ArrayList<>(prefills);
        engines.addAll(decodes);
        Map<String, Double> before = new LinkedHashMap<>();
        for (ServerProcess e : engines) {
            before.put(e.base + " requests", Http.metric(e.base, KEY, "distserve_requests_total"));
            before.put(e.base + " prompt tokens", Http.metric(e.base, KEY, "distserve_prompt_tokens_total"));
        }
        String c = "/v1/completions";
        String ch = "/v1/chat/completions";
        // path, body, expected param (null: none)
        String[][] bad = {
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\"", null},
                {c, "", null},
                {c, "[1,2]", null},
                {ch, "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]", null},
                {c, "{\"model\":\"tiny\"}", "prompt"},
                {ch, "{\"model\":\"tiny\"}", "messages"},
                {ch, "{\"model\":\"tiny\",\"messages\":[]}", "messages"},
                {ch, "{\"model\":\"tiny\",\"messages\":\"hi\"}", "messages"},
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":\"ten\"}", "max_tokens"},
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"temperature\":\"hot\"}", "temperature"},
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"stream\":\"yes\"}", "stream"},
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":0}", "max_tokens"},
                {ch, "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":-1}",
                        "max_tokens"},
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"n\":2}", "n"},
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"temperature\":-0.5}", "temperature"},
                {c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"top_p\":0}", "top_p"},
                {ch, "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":1.5}",
                        "top_p"},
        };
        for (String[] b : bad) {
            HttpResponse<String> r = Http.post(proxy.base + b[0], KEY, b[1]);
            assertThat(r.statusCode()).as("%s %s -> %s", b[0], b[1], r.body()).isEqualTo(400);
            JsonNode error = Http.json(r).path("error");
            assertThat(error.path("type").asText()).as(r.body()).isEqualTo("invalid_request_error");
            assertThat(error.path("message").asText()).as(r.body()).isNotEmpty();
            if (b[2] != null) {
                assertThat(error.path("param").asText()).as("%s -> %s", b[1], r.body()).isEqualTo(b[2]);
            }
        }
        // a model no node serves: 404 naming the model, as the engines answer (and OpenAI, vLLM, LMDeploy)
        for (String[] u : new String[][] {{c, "{\"model\":\"gpt-9\",\"prompt\":\"hi\",\"max_tokens\":2}"},
                {ch, "{\"model\":\"gpt-9\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}"}}) {
            HttpResponse<String> r = Http.post(proxy.base + u[0], KEY, u[1]);
            assertThat(r.statusCode()).as(r.body()).isEqualTo(404);
            JsonNode error = Http.json(r).path("error");
            assertThat(error.path("code").asText()).isEqualTo("model_not_found");
            assertThat(error.path("param").asText()).isEqualTo("model");
            assertThat(error.path("message").asText()).contains("'gpt-9'");
        }
        // the engines give the same answer for a model they do not serve
        HttpResponse<String> engine = Http.post(hybrid.base + c, KEY,
                "{\"model\":\"gpt-9\",\"prompt\":\"hi\",\"max_tokens\":2}");
        assertThat(engine.statusCode()).as(engine.body()).isEqualTo(404);
        assertThat(Http.json(engine).path("error").path("code").asText()).isEqualTo("model_not_found");

        Map<String, Double> after = new LinkedHashMap<>();
        for (ServerProcess e : engines) {
            after.put(e.base + " requests", Http.metric(e.base, KEY, "distserve_requests_total"));
            after.put(e.base + " prompt tokens", Http.metric(e.base, KEY, "distserve_prompt_tokens_total"));
        }
        assertThat(after).as("no engine saw a bad request").isEqualTo(before);
        // and a good one still works
        sameAsHybrid(c, completion("after the bad ones", 8, false), false);
    }

    @Test
    @Order(4)
    void apiKeysClientsNeedOneAndTheProxySendsItsOwnOnInternalCalls() throws Exception {
        String body = completion("key", 4, false);
        for (String key : new String[] {null, "sk-wrong"}) {
            for (String path : List.of("/v1/completions", "/v1/chat/completions", "/nodes/add", "/nodes/remove",
                    "/distserve/connection_warmup", "/distserve/gc")) {
                HttpResponse<String> r = Http.post(proxy.base + path, key, body);
                assertThat(r.statusCode()).as("POST %s with key %s: %s", path, key, r.body()).isEqualTo(401);
                assertThat(Http.json(r).path("error").path("code").asText()).isEqualTo("invalid_api_key");
            }
            for (String path : List.of("/v1/models", "/nodes/status", "/metrics")) {
                assertThat(Http.get(proxy.base + path, key).statusCode()).as("GET %s", path).isEqualTo(401);
            }
        }
        assertThat(Http.get(proxy.base + "/health", null).statusCode()).isEqualTo(200);
        // the nodes want the key too: everything that worked above went through with the proxy's key
        for (ServerProcess e : List.of(prefills.get(0), decodes.get(0))) {
            assertThat(Http.get(e.base + "/distserve/engine_info", null).statusCode()).isEqualTo(401);
            assertThat(Http.post(e.base + "/v1/completions", null, body).statusCode()).isEqualTo(401);
            assertThat(Http.post(e.base + "/distserve/free_cache", null, "{}").statusCode()).isEqualTo(401);
        }
        // warmup: engine_info, p2p_initialize, p2p_connect on every pair, with the key
        HttpResponse<String> warmup = Http.post(proxy.base + "/distserve/connection_warmup", KEY, "");
        assertThat(warmup.statusCode()).as(warmup.body()).isEqualTo(200);
        JsonNode pairs = Http.json(warmup).path("pairs");
        assertThat(pairs).hasSize(4);
        for (JsonNode p : pairs) {
            assertThat(p.path("connected").asBoolean()).as("%s", p).isTrue();
        }
        assertThat(Http.getJson(proxy.base + "/nodes/status", KEY).path("connected_pairs")).hasSize(4);
        // gc: engine_info of every prefill node, with the key; nothing to free
        HttpResponse<String> gc = Http.post(proxy.base + "/distserve/gc", KEY, "{\"min_age_seconds\":0}");
        assertThat(gc.statusCode()).as(gc.body()).isEqualTo(200);
        assertThat(Http.json(gc).path("errors")).as(gc.body()).isEmpty();
        assertThat(Http.json(gc).path("freed")).as(gc.body()).isEmpty();
        // health probes pass (and so do the nodes' re-registrations, which carry their key)
        assertThat(healthyNodes()).isEqualTo(4);
        for (JsonNode node : nodes()) {
            assertThat(node.path("consecutive_probe_failures").asInt()).as("%s", node).isZero();
        }
        // free_cache after a decode took the KV: freed leases on the prefill nodes, none expired
        sameAsHybrid("/v1/chat/completions", chat("key", 6, true), true);
        for (ServerProcess p : prefills) {
            assertThat(Http.metric(p.base, KEY, "distserve_prefill_leases_expired_total")).isZero();
        }
    }

    @Test
    @Order(5)
    void aRestartedProxyComesBackToItsNodesAndTheirConnections() throws Exception {
        // every pair connected, so that there are connections to keep across the restart
        HttpResponse<String> warmup = Http.post(proxy.base + "/distserve/connection_warmup", KEY, "");
        assertThat(warmup.statusCode()).as(warmup.body()).isEqualTo(200);
        Map<String, JsonNode> peersBefore = new LinkedHashMap<>();
        Map<ServerProcess, Long> connectsBefore = new LinkedHashMap<>();
        Map<ServerProcess, Long> registrationsBefore = new LinkedHashMap<>();
        for (ServerProcess d : decodes) {
            peersBefore.put(d.base, Http.getJson(d.base + "/distserve/engine_info", KEY).path("peers"));
            assertThat(peersBefore.get(d.base)).hasSize(2);
            connectsBefore.put(d, count(d, "connected to engine"));
        }
        List<ServerProcess> engines = new ArrayList<>(prefills);
        engines.addAll(decodes);
        for (ServerProcess e : engines) {
            registrationsBefore.put(e, count(e, "registered http"));
        }

        assertThat(proxy.stop()).as("proxy exit code after SIGTERM").isIn(0, 130, 143);
        proxy = startProxy("distserve-proxy-restarted");

        // the node table came back from its file, before any node registered again
        JsonNode table = Http.getJson(proxy.base + "/nodes/status", KEY);
        assertThat(table.path("nodes")).hasSize(4);
        // requests work at once, with no warmup call: the pool is learned from the decode engines' peers
        for (int i = 0; i < 4; i++) {
            sameAsHybrid("/v1/completions", completion("after the restart " + i, 12, i % 2 == 0), i % 2 == 0);
            sameAsHybrid("/v1/chat/completions", chat("after the restart " + i, 12, i % 2 == 1), i % 2 == 1);
        }
        for (ServerProcess d : decodes) {
            assertThat(Http.getJson(d.base + "/distserve/engine_info", KEY).path("peers"))
                    .as("peers of %s", d.base).isEqualTo(peersBefore.get(d.base));
            assertThat(count(d, "connected to engine")).as("KV connections made by %s", d.base)
                    .isEqualTo(connectsBefore.get(d));
        }
        assertThat(proxy.output()).doesNotContain("connected http").doesNotContain(" ERROR ");
        // (the new pool learns a pair when a request first uses it)
        assertThat(Http.getJson(proxy.base + "/nodes/status", KEY).path("connected_pairs")).isNotEmpty();
        // and every engine registered again with the new proxy (after failing while it was gone)
        await().atMost(Duration.ofSeconds(40)).untilAsserted(() -> {
            for (ServerProcess e : engines) {
                assertThat(count(e, "registered http")).as("registrations in %s", e.log)
                        .isGreaterThan(registrationsBefore.get(e));
            }
        });
    }

    static long count(ServerProcess s, String text) throws Exception {
        try (Stream<String> lines = Files.lines(s.log)) {
            return lines.filter(l -> l.contains(text)).count();
        }
    }

    @Test
    @Order(6)
    void aDecodeNodeKilledMidStreamMovesTheStreamToTheOtherWithoutTheClientNoticing() throws Exception {
        String body = completion("a long story", 400, true);
        HttpResponse<Stream<String>> response = Http.CLIENT.send(Http.request(proxy.base + "/v1/completions", KEY)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofLines());
        assertThat(response.statusCode()).isEqualTo(200);
        List<String> payloads = new ArrayList<>();
        ServerProcess victim = null;
        ServerProcess survivor = null;
        Iterator<String> lines = response.body().iterator();
        while (lines.hasNext()) {
            String line = lines.next();
            if (!line.startsWith("data:")) {
                continue;
            }
            payloads.add(line.substring(5).strip());
            if (payloads.size() == 20) {
                // the decode node serving this stream is the one with a request in flight
                for (ServerProcess d : decodes) {
                    if (node(d).path("in_flight").asInt() == 1) {
                        victim = d;
                    } else {
                        survivor = d;
                    }
                }
                assertThat(victim).as("a decode node has the stream in flight: %s", nodes()).isNotNull();
                victim.kill();
            }
        }
        assertThat(victim).as("the stream was long enough to kill its node").isNotNull();
        // the stream went on on the other decode node (prefilled again with what the client had): one stream, no
        // error, the uninterrupted text, every token counted once
        assertThat(payloads).last().isEqualTo("[DONE]");
        assertThat(payloads).noneMatch(p -> p.contains("\"error\""));
        assertThat(payloads.stream().filter(p -> !p.equals("[DONE]")).map(p -> {
            try {
                return Http.JSON.readTree(p).path("id").asText();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }).distinct()).hasSize(1);
        StringBuilder sse = new StringBuilder();
        payloads.forEach(p -> sse.append("data: ").append(p).append("\n\n"));
        HttpResponse<String> direct = Http.post(hybrid.base + "/v1/completions", KEY, body);
        assertThat(Http.text(sse.toString(), true)).isEqualTo(Http.text(direct.body(), true));
        assertThat(Http.usage(sse.toString(), true)).isEqualTo(Http.usage(direct.body(), true));
        assertThat(proxy.output()).contains("stream moves on from prefill").contains(victim.base);

        // the next requests succeed: until the health checks drop the dead node, a request routed to it fails
        // before its first byte and the route sends it to the other one (the KV is still leased on the prefill)
        long survivorBefore = node(survivor).path("completed").asLong();
        long deadFailures = node(victim).path("failures").asLong();
        int sent = 0;
        while (sent < 4 || (node(victim).path("failures").asLong() == deadFailures && sent < 12
                && node(victim).path("health").asText().equals("HEALTHY"))) {
            boolean stream = sent % 2 == 0;
            sameAsHybrid("/v1/completions", completion("after the decode crash " + sent, 10, stream), stream);
            sent++;
        }
        assertThat(node(survivor).path("completed").asLong()).isEqualTo(survivorBefore + sent);
        System.out.println("[decode killed] " + sent + " requests after the crash, retried away from the dead node: "
                + (node(victim).path("failures").asLong() - deadFailures));
        ServerProcess dead = victim;
        await().atMost(Duration.ofSeconds(10)).untilAsserted(
                () -> assertThat(node(dead).path("health").asText()).isEqualTo("UNHEALTHY"));
        sameAsHybrid("/v1/chat/completions", chat("after the decode crash", 10, true), true);
        System.out.println("[decode killed] " + node(dead));

        // nothing is left leased or held on the prefill nodes
        for (ServerProcess p : prefills) {
            await().atMost(Duration.ofSeconds(15)).untilAsserted(() -> {
                assertThat(Http.metric(p.base, KEY, "distserve_kv_blocks_used")).as(p.base).isZero();
                assertThat(Http.metric(p.base, KEY, "distserve_prefill_leases")).as(p.base).isZero();
                assertThat(Http.getJson(p.base + "/distserve/engine_info", KEY).path("leases").asInt()).isZero();
            });
        }
        assertThat(Http.getJson(proxy.base + "/nodes/status", KEY).path("migrations_in_flight").asInt()).isZero();
    }

    @Test
    @Order(7)
    void aKilledPrefillNodeSendsRequestsToTheOther() throws Exception {
        ServerProcess dead = prefills.get(0);
        ServerProcess survivor = prefills.get(1);
        long before = node(survivor).path("completed").asLong();
        long deadFailures = node(dead).path("failures").asLong();
        dead.kill();
        int n = 0;
        // until the health checks drop it, a request routed to the dead node is sent to the other one
        for (int i = 0; i < 6 || (node(dead).path("failures").asLong() == deadFailures && i < 14
                && node(dead).path("health").asText().equals("HEALTHY")); i++, n++) {
            boolean stream = i % 2 == 1;
            if (i % 3 == 0) {
                sameAsHybrid("/v1/chat/completions", chat("after the prefill crash " + i, 8, stream), stream);
            } else {
                sameAsHybrid("/v1/completions", completion("after the prefill crash " + i, 8, stream), stream);
            }
        }
        assertThat(node(survivor).path("completed").asLong()).isEqualTo(before + n);
        System.out.println("[prefill killed] " + n + " requests after the crash, retried away from the dead node: "
                + (node(dead).path("failures").asLong() - deadFailures));
        await().atMost(Duration.ofSeconds(10)).untilAsserted(
                () -> assertThat(node(dead).path("health").asText()).isEqualTo("UNHEALTHY"));
        System.out.println("[prefill killed] " + node(dead));
        await().atMost(Duration.ofSeconds(15)).untilAsserted(() -> {
            assertThat(Http.metric(survivor.base, KEY, "distserve_kv_blocks_used")).isZero();
            assertThat(Http.metric(survivor.base, KEY, "distserve_prefill_leases")).isZero();
        });
        assertThat(proxy.output()).doesNotContain("Exception in thread");
    }

    /** --serving-strategy Hybrid in front of the Hybrid node: the same answers as the node's, streamed or whole. */
    @Test
    @Order(8)
    void aHybridProxyForwardsStreamsAndWholeAnswersUnchanged() throws Exception {
        try (ServerProcess hybridProxy = ServerProcess.proxy("hybrid-proxy", ServerProcess.freePort(),
                "--serving-strategy", "Hybrid", "--api-keys", KEY,
                "--node-table", dir.resolve("hybrid-nodes.json").toString(), "--log-level", "INFO")) {
            HttpResponse<String> added = Http.post(hybridProxy.base + "/nodes/add", KEY,
                    "{\"url\":\"" + hybrid.base + "\",\"status\":{\"role\":\"Hybrid\",\"models\":[\"tiny\"]}}");
            assertThat(added.statusCode()).as(added.body()).isEqualTo(200);
            for (boolean stream : new boolean[] {false, true}) {
                for (String[] r : new String[][] {{"/v1/completions", completion("hybrid " + stream, 40, stream)},
                        {"/v1/chat/completions", chat("hybrid " + stream, 40, stream)}}) {
                    HttpResponse<String> via = Http.post(hybridProxy.base + r[0], KEY, r[1]);
                    HttpResponse<String> direct = Http.post(hybrid.base + r[0], KEY, r[1]);
                    assertThat(via.statusCode()).as(via.body()).isEqualTo(200);
                    assertThat(Http.text(via.body(), stream)).isNotEmpty().isEqualTo(Http.text(direct.body(), stream));
                    assertThat(Http.usage(via.body(), stream)).isEqualTo(Http.usage(direct.body(), stream));
                    if (stream) {
                        assertThat(Http.ssePayloads(via.body())).last().isEqualTo("[DONE]");
                    }
                }
            }
            // a node's 4xx is passed on as it is
            HttpResponse<String> bad = Http.post(hybridProxy.base + "/v1/completions", KEY,
                    "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":5000}");
            assertThat(bad.statusCode()).as(bad.body()).isEqualTo(400);
            assertThat(Http.json(bad).path("error").path("param").asText()).isEqualTo("max_tokens");
            assertThat(hybridProxy.output()).doesNotContain(" ERROR ");
        }
    }

    // ---------------------------------------------------------------------------------------------- cancellation

    /**
     * Sends a request on a raw connection and closes it: after {@code readBytes} of the answer arrived (a stream
     * that has started), or at once after {@code afterMillis} when {@code readBytes} is 0 (mid-prefill, or before a
     * whole answer). Returns when the connection is closed.
     */
    static void leave(String base, String path, String body, int readBytes, long afterMillis) throws Exception {
        java.net.URI uri = java.net.URI.create(base);
        try (java.net.Socket socket = new java.net.Socket(uri.getHost(), uri.getPort())) {
            byte[] b = body.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            String head = "POST " + path + " HTTP/1.1\r\nHost: " + uri.getHost() + ":" + uri.getPort()
                    + "\r\nAuthorization: Bearer " + KEY + "\r\nContent-Type: application/json\r\nContent-Length: "
                    + b.length + "\r\n\r\n";
            socket.getOutputStream().write(head.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
            socket.getOutputStream().write(b);
            socket.getOutputStream().flush();
            if (readBytes > 0) {
                socket.getInputStream().readNBytes(readBytes);
            } else {
                Thread.sleep(afterMillis);
            }
        }
    }

    /** Every live engine holds no KV block and no lease, within a second. */
    static void everyBlockFreeWithinASecond(String what) {
        List<ServerProcess> engines = new ArrayList<>(prefills);
        engines.addAll(decodes);
        engines.add(hybrid);
        engines.removeIf(e -> !e.process.isAlive());
        await().atMost(Duration.ofSeconds(1)).pollInterval(Duration.ofMillis(50)).untilAsserted(() -> {
            for (ServerProcess e : engines) {
                assertThat(Http.metric(e.base, KEY, "distserve_kv_blocks_used")).as("%s: blocks on %s", what, e.base)
                        .isZero();
                assertThat(Http.metric(e.base, KEY, "distserve_prefill_leases")).as("%s: leases on %s", what, e.base)
                        .isZero();
            }
        });
    }

    static double aborted() throws Exception {
        List<ServerProcess> engines = new ArrayList<>(prefills);
        engines.addAll(decodes);
        engines.add(hybrid);
        double n = 0;
        for (ServerProcess e : engines) {
            if (e.process.isAlive()) {
                n += Http.metric(e.base, KEY, "distserve_engine_requests_aborted_total");
            }
        }
        return n;
    }

    /**
     * A client that leaves stops its work: mid-prefill (the prefill engine aborts), before a whole answer, and in
     * the middle of a stream (the decode engine aborts), in DistServe and behind a Hybrid proxy. Every block and
     * lease is free within a second of the close, not at a lease's expiry or the answer's end.
     */
    @Test
    @Order(9)
    void aClientThatLeavesStopsItsWorkAndFreesEveryBlockWithinASecond() throws Exception {
        // ~900 tokens: a prefill of ~0.6 s on one core (an abort lands between engine steps, and this prompt is one)
        String longPrompt = "the long road home ".repeat(90);
        double abortedBefore = aborted();
        leave(proxy.base, "/v1/completions", completion(longPrompt, 8, false), 0, 150);
        everyBlockFreeWithinASecond("DistServe, the client left mid-prefill");
        leave(proxy.base, "/v1/completions", completion("leaving early", 3000, true), 600, 0);
        everyBlockFreeWithinASecond("DistServe stream, the client left mid-stream");
        leave(proxy.base, "/v1/chat/completions", chat("leaving before the answer", 3000, false), 0, 400);
        everyBlockFreeWithinASecond("DistServe, the client left before the whole answer");
        // the two decodes were aborted; the prefill either aborted or, done in the step the abort came in, had its
        // lease freed by the engine that could not deliver it
        assertThat(aborted() - abortedBefore).as("engine requests aborted").isGreaterThanOrEqualTo(2);

        try (ServerProcess hybridProxy = ServerProcess.proxy("hybrid-proxy-cancel", ServerProcess.freePort(),
                "--serving-strategy", "Hybrid", "--api-keys", KEY,
                "--node-table", dir.resolve("hybrid-cancel-nodes.json").toString(), "--log-level", "INFO")) {
            HttpResponse<String> added = Http.post(hybridProxy.base + "/nodes/add", KEY,
                    "{\"url\":\"" + hybrid.base + "\",\"status\":{\"role\":\"Hybrid\",\"models\":[\"tiny\"]}}");
            assertThat(added.statusCode()).as(added.body()).isEqualTo(200);
            leave(hybridProxy.base, "/v1/completions", completion("hybrid leaving", 3000, true), 600, 0);
            everyBlockFreeWithinASecond("Hybrid stream, the client left mid-stream");
            leave(hybridProxy.base, "/v1/completions", completion(longPrompt, 3000, false), 0, 300);
            everyBlockFreeWithinASecond("Hybrid, the client left before the whole answer");
        }
        // and the cluster serves on
        sameAsHybrid("/v1/completions", completion("after the clients left", 12, true), true);
    }
}
