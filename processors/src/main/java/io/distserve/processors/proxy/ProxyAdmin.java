package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.processors.http.JsonBodies;
import io.distserve.processors.http.Replies;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeStatus;
import io.distserve.registry.NodeUrl;
import io.distserve.registry.NodeView;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import org.apache.camel.Exchange;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The proxy's own endpoints besides the OpenAI ones, one method per route: {@code /nodes/add}, {@code /nodes/remove},
 * {@code /nodes/status}, {@code /v1/models}, {@code /health}, {@code /distserve/connection_warmup},
 * {@code /distserve/gc}.
 */
public final class ProxyAdmin {

    private static final Logger LOG = LoggerFactory.getLogger(ProxyAdmin.class);

    private final NodeRegistry registry;
    private final PairConnections pairs;
    private final NodeClient client;
    private final InFlightMigrations migrations;
    private final Duration timeout;
    private final ExecutorService background;
    private final ObjectMapper json;
    private final long created = System.currentTimeMillis() / 1000;

    public ProxyAdmin(NodeRegistry registry, PairConnections pairs, NodeClient client, InFlightMigrations migrations,
                      Duration timeout, ExecutorService background) {
        this.registry = registry;
        this.pairs = pairs;
        this.client = client;
        this.migrations = migrations;
        this.timeout = timeout;
        this.background = background;
        this.json = client.json();
    }

    /**
     * {@code POST /nodes/add {"url", "status": {"role", "models", "speed"}}}. A node that names no models is asked
     * for its {@code /v1/models}, as LMDeploy does.
     */
    public void add(Exchange exchange) throws Exception {
        JsonNode body = body(exchange);
        String url = url(body.path("url").asText(null));
        NodeStatus status;
        try {
            status = body.hasNonNull("status") ? NodeStatus.fromJson(body.get("status"))
                    : new NodeStatus(NodeRole.Hybrid, List.of(), null);
        } catch (IllegalArgumentException e) {
            throw OpenAiException.badRequest("status", e.getMessage());
        }
        if (status.models().isEmpty()) {
            List<String> models = new ArrayList<>();
            try {
                for (JsonNode m : client.getJson(url, "/v1/models", timeout).path("data")) {
                    models.add(m.path("id").asText());
                }
            } catch (NodeFailure e) {
                throw OpenAiException.badRequest("status.models", "No models given and " + url
                        + "/v1/models did not answer: " + e.getMessage());
            }
            status = new NodeStatus(status.role(), models, status.speed(), status.extra());
        }
        NodeView view = registry.register(url, status);
        Replies.json(exchange, 200, json.writeValueAsString(view));
    }

    /** {@code POST /nodes/remove {"url"}} (or {@code ?node_url=}, LMDeploy's form). */
    public void remove(Exchange exchange) throws Exception {
        String raw = exchange.getIn().getHeader("node_url", String.class);
        if (raw == null) {
            raw = body(exchange).path("url").asText(null);
        }
        String url = url(raw);
        boolean removed = registry.remove(url);
        pairs.forget(url);
        ObjectNode out = json.createObjectNode();
        out.put("url", url);
        out.put("removed", removed);
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /** {@code GET /nodes/status}. */
    public void status(Exchange exchange) throws Exception {
        ObjectNode out = json.createObjectNode();
        out.set("nodes", json.valueToTree(registry.nodes()));
        ArrayNode connected = out.putArray("connected_pairs");
        pairs.links().forEach((p, link) -> {
            ObjectNode o = connected.addObject();
            o.put("prefill", p.prefillUrl());
            o.put("decode", p.decodeUrl());
            o.put("protocol", link.protocol());
        });
        out.put("migrations_in_flight", migrations.size());
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /** {@code GET /v1/models}: every model some healthy node serves, once. */
    public void models(Exchange exchange) throws Exception {
        Replies.json(exchange, 200, json.writeValueAsString(
                new OpenAiResponses(json).models(registry.servedModels(), created, "distserve")));
    }

    /** {@code GET /health}: the proxy is up; how many nodes are healthy. */
    public void health(Exchange exchange) throws Exception {
        List<NodeView> nodes = registry.nodes();
        ObjectNode out = json.createObjectNode();
        out.put("status", "ok");
        out.put("nodes", nodes.size());
        out.put("healthy_nodes", nodes.stream().filter(NodeView::isHealthy).count());
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /** {@code POST /distserve/connection_warmup}: connects every healthy (prefill, decode) pair now. */
    public void warmup(Exchange exchange) throws Exception {
        List<CompletableFuture<ObjectNode>> results = new ArrayList<>();
        for (NodeView p : registry.candidates(null, NodeRole.Prefill)) {
            for (NodeView d : registry.candidates(null, NodeRole.Decode)) {
                if (!p.models().isEmpty() && !d.models().isEmpty() && p.models().stream().noneMatch(d.models()::contains)) {
                    continue;
                }
                results.add(CompletableFuture.supplyAsync(() -> {
                    ObjectNode r = json.createObjectNode();
                    r.put("prefill", p.url());
                    r.put("decode", d.url());
                    try {
                        r.put("protocol", pairs.ensure(p.url(), d.url(), null).protocol());
                        r.put("connected", true);
                    } catch (Exception e) {
                        r.put("connected", false);
                        r.put("error", e.getMessage());
                    }
                    return r;
                }, background));
            }
        }
        ObjectNode out = json.createObjectNode();
        ArrayNode list = out.putArray("pairs");
        for (CompletableFuture<ObjectNode> f : results) {
            list.add(f.get());
        }
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /**
     * {@code POST /distserve/gc}: frees leases on prefill nodes that no request of this proxy is using (their decode
     * side is gone, or the proxy that took them restarted), older than {@code min_age_seconds} (default 10).
     */
    public void gc(Exchange exchange) throws Exception {
        byte[] raw = exchange.getIn().getBody(byte[].class);
        long minAgeMillis = 10_000;
        if (raw != null && raw.length > 0) {
            JsonNode b = body(raw); // the body was read above: reading it from the exchange again gives nothing
            if (b.has("min_age_seconds")) {
                if (!b.get("min_age_seconds").isNumber() || b.get("min_age_seconds").asDouble() < 0) {
                    throw OpenAiException.badRequest("min_age_seconds", "'min_age_seconds' must be a number >= 0.");
                }
                minAgeMillis = (long) (b.get("min_age_seconds").asDouble() * 1000);
            }
        }
        Set<String> inUse = migrations.sessions();
        ObjectNode out = json.createObjectNode();
        ArrayNode freed = out.putArray("freed");
        ArrayNode errors = out.putArray("errors");
        for (NodeView p : registry.candidates(null, NodeRole.Prefill)) {
            try {
                JsonNode info = client.getJson(p.url(), "/distserve/engine_info", timeout);
                String engineId = info.path("engine_id").asText();
                for (JsonNode lease : info.path("lease_sessions")) {
                    String session = lease.path("session_id").asText();
                    if (inUse.contains(session) || lease.path("age_ms").asLong() < minAgeMillis) {
                        continue;
                    }
                    ObjectNode req = json.createObjectNode();
                    req.put("remote_engine_id", engineId);
                    req.put("remote_session_id", session);
                    if (client.postJson(p.url(), "/distserve/free_cache", req, timeout).path("freed").asBoolean()) {
                        ObjectNode f = freed.addObject();
                        f.put("node", p.url());
                        f.put("session_id", session);
                        f.put("blocks", lease.path("blocks").asInt());
                    }
                }
            } catch (NodeFailure e) {
                errors.add(e.getMessage());
            }
        }
        if (freed.size() > 0) {
            LOG.info("gc freed {} prefill leases", freed.size());
        }
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    private JsonNode body(Exchange exchange) {
        return body(exchange.getIn().getBody(byte[].class));
    }

    private JsonNode body(byte[] bytes) {
        return JsonBodies.object(bytes, json);
    }

    private static String url(String raw) {
        if (raw == null || raw.isBlank()) {
            throw OpenAiException.badRequest("url", "'url' is required.");
        }
        try {
            return NodeUrl.normalize(raw);
        } catch (IllegalArgumentException e) {
            throw OpenAiException.badRequest("url", e.getMessage());
        }
    }
}
