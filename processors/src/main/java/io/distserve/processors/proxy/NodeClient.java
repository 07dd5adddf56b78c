package io.distserve.processors.proxy;

import io.distserve.processors.http.BlockingHttp;
import io.distserve.processors.http.ClientGoneException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.openai.OpenAiException;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The proxy's HTTP calls to engine nodes, each with a timeout (LMDeploy's proxy had none), each carrying the
 * proxy's API key (LMDeploy sent none, so nodes with --api-keys broke DistServe).
 *
 * <p>Failures before a node answered are {@link NodeFailure}s (the route may try another node); a node's 4xx is
 * the client's fault and is passed on as an {@link OpenAiException} with the node's message.
 */
public final class NodeClient {

    /** A node's answer: status and body (buffered). */
    public record Reply(int status, byte[] body) {
    }

    /** An open streamed answer; closing it aborts the upstream request. */
    public record Stream(int status, InputStream body) implements AutoCloseable {
        @Override
        public void close() {
            try {
                body.close();
            } catch (IOException ignored) {
                // closing an aborted stream may fail; nothing to do
            }
        }
    }

    private final BlockingHttp http;
    private final ObjectMapper json;
    private final Map<String, String> postHeaders;
    private final Map<String, String> getHeaders;

    public NodeClient(Duration connectTimeout, String apiKey, ObjectMapper json) {
        this.http = new BlockingHttp(connectTimeout);
        this.json = json;
        Map<String, String> get = new LinkedHashMap<>();
        if (apiKey != null) {
            get.put("Authorization", "Bearer " + apiKey);
        }
        Map<String, String> post = new LinkedHashMap<>(get);
        post.put("Content-Type", "application/json");
        this.getHeaders = Map.copyOf(get);
        this.postHeaders = Map.copyOf(post);
    }

    public ObjectMapper json() {
        return json;
    }

    /** POST JSON and read the whole answer; 5xx and transport errors are {@link NodeFailure}s. */
    public Reply post(String nodeUrl, String path, byte[] body, Duration timeout) throws InterruptedException {
        return post(nodeUrl, path, body, timeout, null);
    }

    /**
     * As {@link #post(String, String, byte[], Duration)}, for a client that may leave: {@code cancel} ends the call
     * ({@link ClientGoneException}, not a node failure).
     */
    public Reply post(String nodeUrl, String path, byte[] body, Duration timeout, BlockingHttp.Cancel cancel)
            throws InterruptedException {
        try {
            BlockingHttp.Response resp = http.send(URI.create(nodeUrl + path), "POST", postHeaders, body, timeout,
                    cancel);
            byte[] bytes = BlockingHttp.readAll(resp.body());
            if (resp.status() >= 500) {
                throw new NodeFailure(nodeUrl, "HTTP " + resp.status() + " from " + path + ": " + abbreviate(bytes),
                        null);
            }
            return new Reply(resp.status(), bytes);
        } catch (IOException e) {
            throw failure(nodeUrl, path, e, cancel);
        }
    }

    private static RuntimeException failure(String nodeUrl, String path, IOException e, BlockingHttp.Cancel cancel) {
        if (e instanceof BlockingHttp.CancelledException || (cancel != null && cancel.isCancelled())) {
            return new ClientGoneException("the client left during " + path + " on " + nodeUrl);
        }
        return new NodeFailure(nodeUrl, path + " failed: " + e, e);
    }

    /** POST and return the answer as it streams; 5xx and transport errors before the headers are failures. */
    public Stream postStream(String nodeUrl, String path, byte[] body, Duration firstByteTimeout)
            throws InterruptedException {
        return postStream(nodeUrl, path, body, firstByteTimeout, null);
    }

    /** As {@link #postStream(String, String, byte[], Duration)}; {@code cancel} also ends the body's reads. */
    public Stream postStream(String nodeUrl, String path, byte[] body, Duration firstByteTimeout,
                             BlockingHttp.Cancel cancel) throws InterruptedException {
        try {
            BlockingHttp.Response resp = http.send(URI.create(nodeUrl + path), "POST", postHeaders, body,
                    firstByteTimeout, cancel);
            if (resp.status() >= 500) {
                byte[] text;
                try (InputStream in = resp.body()) {
                    text = in.readNBytes(2000);
                }
                throw new NodeFailure(nodeUrl, "HTTP " + resp.status() + " from " + path + ": "
                        + abbreviate(text), null, resp.status(), text);
            }
            return new Stream(resp.status(), resp.body());
        } catch (IOException e) {
            throw failure(nodeUrl, path, e, cancel);
        }
    }

    public JsonNode getJson(String nodeUrl, String path, Duration timeout) throws InterruptedException {
        try {
            BlockingHttp.Response resp = http.send(URI.create(nodeUrl + path), "GET", getHeaders, null, timeout);
            byte[] bytes = BlockingHttp.readAll(resp.body());
            if (resp.status() != 200) {
                throw new NodeFailure(nodeUrl, "HTTP " + resp.status() + " from " + path + ": "
                        + abbreviate(bytes), null);
            }
            return json.readTree(bytes);
        } catch (IOException e) {
            throw new NodeFailure(nodeUrl, path + " failed: " + e, e);
        }
    }

    public JsonNode postJson(String nodeUrl, String path, JsonNode body, Duration timeout)
            throws InterruptedException {
        Reply r;
        try {
            r = post(nodeUrl, path, json.writeValueAsBytes(body), timeout);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        if (r.status() != 200) {
            throw new NodeFailure(nodeUrl, "HTTP " + r.status() + " from " + path + ": " + abbreviate(r.body()), null);
        }
        try {
            return json.readTree(r.body());
        } catch (IOException e) {
            throw new NodeFailure(nodeUrl, "invalid JSON from " + path, e);
        }
    }

    /** A node's 4xx answer, passed to the client as an OpenAI error with the node's own message. */
    public OpenAiException clientError(Reply r) {
        String message = abbreviate(r.body());
        String type = "invalid_request_error";
        String param = null;
        String code = null;
        try {
            JsonNode e = json.readTree(r.body()).path("error");
            if (e.isObject()) {
                message = e.path("message").asText(message);
                type = e.path("type").asText(type);
                param = e.path("param").isTextual() ? e.path("param").asText() : null;
                code = e.path("code").isTextual() ? e.path("code").asText() : null;
            }
        } catch (IOException ignored) {
            // not JSON: keep the raw text
        }
        return new OpenAiException(r.status(), type, param, code, message);
    }

    static String abbreviate(byte[] body) {
        String s = new String(body, 0, Math.min(body.length, 500), java.nio.charset.StandardCharsets.UTF_8);
        return s.replace('\n', ' ');
    }
}
