package io.distserve.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** Plain HTTP (java.net.http, as curl would) for the integration tests: requests, SSE bodies, /metrics samples. */
final class Http {

    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    private Http() {
    }

    static HttpRequest.Builder request(String url, String key) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(120));
        if (key != null) {
            b.header("Authorization", "Bearer " + key);
        }
        return b;
    }

    static HttpResponse<String> post(String url, String key, String body) throws IOException, InterruptedException {
        return CLIENT.send(request(url, key).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> get(String url, String key) throws IOException, InterruptedException {
        return CLIENT.send(request(url, key).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode json(HttpResponse<String> r) throws IOException {
        return JSON.readTree(r.body());
    }

    static JsonNode getJson(String url, String key) throws IOException, InterruptedException {
        HttpResponse<String> r = get(url, key);
        if (r.statusCode() != 200) {
            throw new AssertionError("GET " + url + ": HTTP " + r.statusCode() + " " + r.body());
        }
        return JSON.readTree(r.body());
    }

    /** The payloads of an SSE body's {@code data:} lines, {@code [DONE]} included. */
    static List<String> ssePayloads(String body) {
        List<String> out = new ArrayList<>();
        for (String line : body.split("\n")) {
            if (line.startsWith("data:")) {
                out.add(line.substring(5).strip());
            }
        }
        return out;
    }

    /** The text of an answer: a JSON body, or an SSE stream's chunks put together (completions or chat). */
    static String text(String body, boolean stream) throws IOException {
        if (!stream) {
            JsonNode choice = JSON.readTree(body).path("choices").path(0);
            return choice.has("message") ? choice.path("message").path("content").asText()
                    : choice.path("text").asText();
        }
        StringBuilder text = new StringBuilder();
        for (String payload : ssePayloads(body)) {
            if (payload.equals("[DONE]")) {
                continue;
            }
            for (JsonNode choice : JSON.readTree(payload).path("choices")) {
                text.append(choice.has("delta") ? choice.path("delta").path("content").asText("")
                        : choice.path("text").asText(""));
            }
        }
        return text.toString();
    }

    /**
     * The token counts of an answer's usage (the last usage chunk of a stream); missing node if none. Without
     * {@code prompt_tokens_details}: how many prompt tokens a node had cached depends on what it served before, not
     * on the answer.
     */
    static JsonNode usage(String body, boolean stream) throws IOException {
        JsonNode usage = JSON.missingNode();
        if (!stream) {
            usage = JSON.readTree(body).path("usage");
        } else {
            for (String payload : ssePayloads(body)) {
                if (!payload.equals("[DONE]") && JSON.readTree(payload).path("usage").isObject()) {
                    usage = JSON.readTree(payload).path("usage");
                }
            }
        }
        if (usage instanceof com.fasterxml.jackson.databind.node.ObjectNode o) {
            o.remove("prompt_tokens_details");
        }
        return usage;
    }

    /** Sum of every sample of a Prometheus metric (all label sets) on {@code base}/metrics. */
    static double metric(String base, String key, String name) throws IOException, InterruptedException {
        HttpResponse<String> r = get(base + "/metrics", key);
        if (r.statusCode() != 200) {
            throw new AssertionError("GET " + base + "/metrics: HTTP " + r.statusCode());
        }
        double sum = 0;
        boolean found = false;
        for (String line : r.body().split("\n")) {
            if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1).trim());
                found = true;
            }
        }
        return found ? sum : 0;
    }

    /** Waits (60 s at most) until the proxy's node table holds {@code count} healthy nodes. */
    static void awaitHealthyNodes(String proxyBase, String key, int count) {
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(60)).until(() -> {
            int healthy = 0;
            for (JsonNode n : getJson(proxyBase + "/nodes/status", key).path("nodes")) {
                healthy += n.path("health").asText().equals("HEALTHY") ? 1 : 0;
            }
            return healthy == count;
        });
    }
}
