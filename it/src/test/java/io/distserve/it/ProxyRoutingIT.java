package io.distserve.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The routing strategies of a real proxy process ({@code serve proxy --serving-strategy Hybrid}, one proxy process
 * per strategy) over Hybrid nodes added with {@code POST /nodes/add} and their declared speeds. The nodes are
 * {@link EngineStub}s (one child JVM, a server per node, each with a fixed answer delay): what is measured is where
 * the proxy sends requests, counted both by the proxy ({@code GET /nodes/status} completed) and by each node.
 */
class ProxyRoutingIT {

    @TempDir
    static Path dir;

    static final int FAST = free();
    static final int MEDIUM = free();
    static final int SLOW = free();
    static final int HOLD_A = free();
    static final int HOLD_B = free();
    static final int WARM = free();
    static final int OBSERVED_SLOW = free();
    static final int OBSERVED_MEDIUM = free();
    static ServerProcess stubs;
    ServerProcess proxy;

    static int free() {
        try {
            return ServerProcess.freePort();
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @BeforeAll
    static void startNodes() throws Exception {
        // FAST, MEDIUM, SLOW: named for the speeds they declare, all answer at once; HOLD_*: hold each request 3 s
        // (requests stay in flight); OBSERVED_*: answer in 250 and 50 ms (observed latency)
        stubs = ServerProcess.stub("routing-stubs", FAST + ":0", MEDIUM + ":0", SLOW + ":0", HOLD_A + ":3000",
                HOLD_B + ":3000", WARM + ":0",
                OBSERVED_SLOW + ":250", OBSERVED_MEDIUM + ":50");
    }

    @AfterAll
    static void stopNodes() throws Exception {
        if (stubs != null) {
            stubs.close();
        }
    }

    @AfterEach
    void stopProxy() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
    }

    void startProxy(String strategy) throws Exception {
        startProxy(strategy, strategy);
    }

    void startProxy(String strategy, String name) throws Exception {
        proxy = ServerProcess.proxy("routing-proxy-" + name, ServerProcess.freePort(),
                "--routing-strategy", strategy, "--serving-strategy", "Hybrid",
                "--node-table", dir.resolve(name + "-nodes.json").toString());
    }

    void add(int port, Double speed) throws Exception {
        String status = "{\"role\":\"Hybrid\",\"models\":[\"stub\"]" + (speed == null ? "" : ",\"speed\":" + speed)
                + "}";
        HttpResponse<String> r = Http.post(proxy.base + "/nodes/add", null,
                "{\"url\":\"http://127.0.0.1:" + port + "\",\"status\":" + status + "}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    }

    static final String REQUEST = "{\"model\":\"stub\",\"prompt\":\"hi\",\"max_tokens\":1,\"temperature\":0}";

    void complete(int n) throws Exception {
        for (int i = 0; i < n; i++) {
            HttpResponse<String> r = Http.post(proxy.base + "/v1/completions", null, REQUEST);
            // on a failure, the nodes' view too (each node's last_request_error says why the forward failed)
            assertThat(r.statusCode()).as(() -> r.body() + "; nodes: " + nodeStatus()).isEqualTo(200);
        }
    }

    String nodeStatus() {
        try {
            return Http.getJson(proxy.base + "/nodes/status", null).toString();
        } catch (Exception e) {
            return "(no status: " + e + ")";
        }
    }

    /** Completed requests per node port, as the proxy counts them. */
    Map<Integer, Long> completed() throws Exception {
        Map<Integer, Long> out = new HashMap<>();
        for (JsonNode node : Http.getJson(proxy.base + "/nodes/status", null).path("nodes")) {
            String url = node.path("url").asText();
            out.put(Integer.parseInt(url.substring(url.lastIndexOf(':') + 1)), node.path("completed").asLong());
        }
        return out;
    }

    static long served(int port) throws Exception {
        return Http.getJson("http://127.0.0.1:" + port + "/stats", null).path("requests").asLong();
    }

    /** random: each node with probability proportional to its declared speed (1 : 2 : 5 here). */
    @Test
    void randomIsWeightedByDeclaredSpeed() throws Exception {
        startProxy("random");
        add(FAST, 5.0);
        add(MEDIUM, 2.0);
        add(SLOW, 1.0);
        Map<Integer, Long> before = Map.of(FAST, served(FAST), MEDIUM, served(MEDIUM), SLOW, served(SLOW));
        int n = 400;
        complete(n);
        Map<Integer, Long> counts = completed();
        System.out.println("[random 5:2:1] " + counts);
        assertThat(counts.values().stream().mapToLong(Long::longValue).sum()).isEqualTo(n);
        // each within 5 standard deviations of n * p (binomial); a uniform choice would be ~133 each
        double[][] expected = {{FAST, 5.0 / 8}, {MEDIUM, 2.0 / 8}, {SLOW, 1.0 / 8}};
        for (double[] e : expected) {
            int port = (int) e[0];
            double mean = n * e[1];
            double sd = Math.sqrt(n * e[1] * (1 - e[1]));
            assertThat((double) counts.get(port)).as("requests to the node of speed share %.3f", e[1])
                    .isBetween(mean - 5 * sd, mean + 5 * sd);
            // the node's own count agrees with the proxy's
            assertThat(served(port) - before.get(port)).isEqualTo(counts.get(port));
        }
    }

    /**
     * min_expected_latency: the fewest in-flight requests per unit of speed, the new one counted. Idle nodes: the
     * fastest always. Under load (requests held 3 s by the nodes), in-flight counts settle proportional to speed:
     * 8 concurrent requests over speeds 1 and 3 are exactly 2 and 6.
     */
    @Test
    void minExpectedLatencyBalancesInFlightPerSpeed() throws Exception {
        startProxy("min_expected_latency");
        add(FAST, 3.0);
        add(MEDIUM, 1.0);
        complete(40);
        Map<Integer, Long> idle = completed();
        System.out.println("[min_expected_latency idle, speeds 3:1] " + idle);
        assertThat(idle).containsEntry(FAST, 40L).containsEntry(MEDIUM, 0L);

        proxy.close();
        startProxy("min_expected_latency", "min_expected_latency-held");
        add(HOLD_A, 3.0);
        add(HOLD_B, 1.0);
        long a0 = served(HOLD_A);
        long b0 = served(HOLD_B);
        List<CompletableFuture<HttpResponse<String>>> running = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            running.add(Http.CLIENT.sendAsync(Http.request(proxy.base + "/v1/completions", null)
                    .header("Content-Type", "application/json")
                    .POST(java.net.http.HttpRequest.BodyPublishers.ofString(REQUEST)).build(),
                    HttpResponse.BodyHandlers.ofString()));
            int sent = i + 1;
            // the next one is routed only once this one is counted in flight
            await().atMost(Duration.ofSeconds(2)).pollInterval(Duration.ofMillis(10))
                    .until(() -> inFlight() == sent);
        }
        for (CompletableFuture<HttpResponse<String>> f : running) {
            assertThat(f.get().statusCode()).isEqualTo(200);
        }
        Map<Integer, Long> held = completed();
        System.out.println("[min_expected_latency 8 concurrent, speeds 3:1] " + held);
        assertThat(held).containsEntry(HOLD_A, 6L).containsEntry(HOLD_B, 2L);
        assertThat(served(HOLD_A) - a0).isEqualTo(6);
        assertThat(served(HOLD_B) - b0).isEqualTo(2);
    }

    int inFlight() throws Exception {
        int sum = 0;
        for (JsonNode node : Http.getJson(proxy.base + "/nodes/status", null).path("nodes")) {
            sum += node.path("in_flight").asInt();
        }
        return sum;
    }

    /**
     * min_observed_latency: the lowest recent mean latency wins, and a node with no history is tried first (in
     * LMDeploy a node added later never gets traffic).
     */
    @Test
    void minObservedLatencyPrefersTheFastestAndTriesNewNodes() throws Exception {
        startProxy("min_observed_latency");
        // a cold proxy's first requests are slow (class loading, JIT): a node whose only sample is that slow
        // would look slow until the sample ages out (distserve.proxy.latencyMaxAgeSeconds, 30 s); warm up first
        add(WARM, null);
        complete(50);
        HttpResponse<String> removed = Http.post(proxy.base + "/nodes/remove", null,
                "{\"url\":\"http://127.0.0.1:" + WARM + "\"}");
        assertThat(removed.statusCode()).as(removed.body()).isEqualTo(200);
        add(OBSERVED_SLOW, null);   // 250 ms
        add(OBSERVED_MEDIUM, null); // 50 ms (wide gaps: one sample each decides, on a busy machine)
        complete(2); // both untried: one each
        // on a failure, the nodes' view: a forward that failed on one node (its last_request_error says why) is
        // retried on the other, which then completes both (seen once on 2026-12-04, not reproduced since)
        assertThat(completed()).as(() -> nodeStatus()).containsEntry(OBSERVED_SLOW, 1L)
                .containsEntry(OBSERVED_MEDIUM, 1L);
        complete(20);
        assertThat(completed()).as(Http.getJson(proxy.base + "/nodes/status", null).toString())
                .containsEntry(OBSERVED_SLOW, 1L).containsEntry(OBSERVED_MEDIUM, 21L);

        add(FAST, null); // new, no history: the very next request goes there
        complete(1);
        assertThat(completed()).containsEntry(FAST, 1L);
        complete(20); // and it is the fastest
        Map<Integer, Long> counts = completed();
        System.out.println("[min_observed_latency 250 ms, 50 ms, then 0 ms added] " + counts);
        assertThat(counts).containsEntry(OBSERVED_SLOW, 1L).containsEntry(OBSERVED_MEDIUM, 21L).containsEntry(FAST, 21L);
    }
}
