package io.distserve.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --routing-strategy kv_aware} over real engines (tiny model, CPU, prefix caching on by default): the
 * proxy fetches the model's tokenizer from an engine and polls their prefix-cache feeds; requests that share a
 * system prompt go to the engine that holds it and report cached tokens, unrelated ones spread. In DistServe the
 * shared prompt goes to the prefill engine that holds it, and the decode engine pulls only what it lacks.
 */
class KvAwareRoutingIT {

    @TempDir
    static Path dir;
    static Path model;
    static Path properties;
    static final String SYSTEM = "You are a careful assistant for a shipping company. Answer in short sentences, "
            + "name the port, the vessel and the date of every sailing you mention, never guess a date, say when "
            + "you do not know, and keep a friendly tone. Tariffs are in euros; weights in metric tonnes. ".repeat(4);

    @BeforeAll
    static void modelAndProperties() throws Exception {
        model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 3, null).withThreads(1).writeTo(model);
        properties = dir.resolve("kv-aware.properties");
        Files.writeString(properties, "distserve.proxy.kvAware.pollIntervalMillis = 200\n"
                + "distserve.proxy.healthIntervalSeconds = 1\n");
    }

    static String completion(String prompt, int maxTokens) {
        ObjectNode body = Http.JSON.createObjectNode();
        body.put("model", "tiny");
        body.put("prompt", prompt);
        body.put("max_tokens", maxTokens);
        body.put("temperature", 0);
        body.put("ignore_eos", true);
        return body.toString();
    }

    static JsonNode post(String base, String body) throws Exception {
        HttpResponse<String> r = Http.post(base + "/v1/completions", null, body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return Http.json(r);
    }

    static int cached(JsonNode answer) {
        return answer.path("usage").path("prompt_tokens_details").path("cached_tokens").asInt();
    }

    static Map<String, Long> completed(ServerProcess proxy) throws Exception {
        Map<String, Long> out = new HashMap<>();
        for (JsonNode node : Http.getJson(proxy.base + "/nodes/status", null).path("nodes")) {
            out.put(node.path("url").asText(), node.path("completed").asLong());
        }
        return out;
    }

    static void awaitHealthy(ServerProcess proxy, int nodes) {
        Http.awaitHealthyNodes(proxy.base, null, nodes);
        // the proxy has the tokenizer once its log says so
        await().atMost(Duration.ofSeconds(30)).until(() -> proxy.output().contains("loaded the tokenizer of tiny"));
    }

    static void close(ServerProcess... processes) throws InterruptedException {
        for (ServerProcess p : processes) {
            if (p != null) {
                p.close();
            }
        }
    }

    @Test
    void hybridSharedPromptsGoToTheirHolderAndUnrelatedOnesSpread() throws Exception {
        int proxyPort = ServerProcess.freePort();
        ServerProcess proxy = null;
        ServerProcess a = null;
        ServerProcess b = null;
        try {
            proxy = ServerProcess.proxy("kv-aware-proxy", proxyPort, "--routing-strategy", "kv_aware",
                    "--serving-strategy", "Hybrid", "--node-table", dir.resolve("hybrid-nodes.json").toString(),
                    "--properties", properties.toString());
            String url = "http://127.0.0.1:" + proxyPort;
            a = ServerProcess.launchApiServer("kv-aware-a", ServerProcess.freePort(), model, "--proxy-url", url,
                    "--cache-max-entry-count", "0.1");
            b = ServerProcess.launchApiServer("kv-aware-b", ServerProcess.freePort(), model, "--proxy-url", url,
                    "--cache-max-entry-count", "0.1");
            a.healthy();
            b.healthy();
            awaitHealthy(proxy, 2);

            JsonNode first = post(proxy.base, completion(SYSTEM + "Question 0: when does the next ship leave?", 4));
            assertThat(cached(first)).isZero();
            Map<String, Long> afterFirst = completed(proxy);
            String holder = afterFirst.entrySet().stream().filter(e -> e.getValue() == 1).findFirst().orElseThrow()
                    .getKey();
            Thread.sleep(600); // three polls: the proxy has seen the holder's new blocks
            for (int i = 1; i <= 6; i++) {
                JsonNode r = post(proxy.base, completion(SYSTEM + "Question " + i + ": what does it carry?", 4));
                assertThat(cached(r)).as("request %d reuses the system prompt", i).isGreaterThanOrEqualTo(256);
            }
            assertThat(completed(proxy).get(holder)).as(completed(proxy).toString()).isEqualTo(7);
            assertThat(Http.metric(proxy.base, null, "distserve_proxy_routing_decisions_total")).isGreaterThanOrEqualTo(7);

            Map<String, Long> before = completed(proxy);
            for (int i = 0; i < 30; i++) {
                post(proxy.base, completion("Unrelated prompt number " + i + " about the weather in spring " + i, 2));
            }
            Map<String, Long> after = completed(proxy);
            for (String node : after.keySet()) {
                assertThat(after.get(node) - before.get(node)).as("unrelated requests to %s: %s", node, after)
                        .isGreaterThanOrEqualTo(3); // ties at random: P(fewer than 3 of 30) ~ 4e-6
            }
        } finally {
            close(a, b, proxy);
        }
    }

    @Test
    void distServePicksThePrefillThatHoldsThePromptAndTheDecodePullsOnlyTheNewBlocks() throws Exception {
        int proxyPort = ServerProcess.freePort();
        ServerProcess proxy = null;
        ServerProcess p1 = null;
        ServerProcess p2 = null;
        ServerProcess d = null;
        try {
            proxy = ServerProcess.proxy("kv-aware-ds-proxy", proxyPort, "--routing-strategy", "kv_aware",
                    "--serving-strategy", "DistServe", "--node-table", dir.resolve("ds-nodes.json").toString(),
                    "--properties", properties.toString());
            String url = "http://127.0.0.1:" + proxyPort;
            p1 = ServerProcess.launchApiServer("kv-aware-p1", ServerProcess.freePort(), model, "--role", "Prefill",
                    "--proxy-url", url, "--cache-max-entry-count", "0.1");
            p2 = ServerProcess.launchApiServer("kv-aware-p2", ServerProcess.freePort(), model, "--role", "Prefill",
                    "--proxy-url", url, "--cache-max-entry-count", "0.1");
            d = ServerProcess.launchApiServer("kv-aware-d", ServerProcess.freePort(), model, "--role", "Decode",
                    "--proxy-url", url, "--cache-max-entry-count", "0.1");
            for (ServerProcess s : List.of(p1, p2, d)) {
                s.healthy();
            }
            awaitHealthy(proxy, 3);

            String turn1 = SYSTEM + "User: which ships leave Rotterdam this week?\nAssistant:";
            JsonNode first = post(proxy.base, completion(turn1, 8));
            String answer = first.path("choices").path(0).path("text").asText();
            Thread.sleep(600);
            double pulledBefore = Http.metric(d.base, null, "kv_migration_bytes_total");
            double cachedBefore = Http.metric(d.base, null, "kv_migration_cached_blocks_total");
            String turn2 = turn1 + answer + "\nUser: and from Hamburg?\nAssistant:";
            JsonNode second = post(proxy.base, completion(turn2, 8));
            assertThat(cached(second)).as("the prefill engine reused turn 1").isGreaterThanOrEqualTo(256);
            assertThat(Http.metric(d.base, null, "kv_migration_cached_blocks_total") - cachedBefore)
                    .as("blocks the decode engine did not pull").isGreaterThanOrEqualTo(4);
            double pulled = Http.metric(d.base, null, "kv_migration_bytes_total") - pulledBefore;
            assertThat(pulled).isPositive();
            // every request of the shared prompt went to one prefill engine
            for (int i = 0; i < 4; i++) {
                post(proxy.base, completion(SYSTEM + "User: question " + i + "?\nAssistant:", 2));
            }
            Map<String, Long> done = completed(proxy);
            long p1Done = done.get(p1.base);
            long p2Done = done.get(p2.base);
            assertThat(Math.max(p1Done, p2Done)).as(done.toString()).isEqualTo(6);
            assertThat(Math.min(p1Done, p2Done)).as(done.toString()).isZero();
        } finally {
            close(d, p1, p2, proxy);
        }
    }
}
