package io.distserve.processors.disagg;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.kv.PrefixCacheDelta;
import io.distserve.engine.tokenizer.ModelTokenizer;
import io.distserve.processors.engine.EngineNode;
import io.distserve.processors.http.JsonBodies;
import io.distserve.processors.http.Replies;
import io.distserve.processors.openai.OpenAiException;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.camel.Exchange;

/**
 * The engine's PD control endpoints, JSON only (LMDeploy used pickle here, their #4804): {@code engine_info},
 * {@code p2p_initialize}, {@code p2p_connect}, {@code p2p_drop_connect}, {@code free_cache}. One method per route.
 */
public final class ControlEndpoints {

    private final EngineNode node;
    private final MigrationService migration;
    private final PrefillLeases leases;
    private final ObjectMapper json;

    public ControlEndpoints(EngineNode node, MigrationService migration, PrefillLeases leases, ObjectMapper json) {
        this.node = node;
        this.migration = migration;
        this.leases = leases;
        this.json = json;
    }

    /** {@code GET /distserve/engine_info}. */
    public void engineInfo(Exchange exchange) throws IOException {
        ObjectNode out = json.createObjectNode();
        out.put("engine_id", node.engineId());
        out.put("model", node.modelName());
        out.put("role", node.role().name());
        out.put("state", node.state().name().toLowerCase());
        migration.describe(out);
        out.put("leases", leases.active());
        out.put("leased_blocks", leases.blocksHeld());
        var sessions = out.putArray("lease_sessions");
        for (PrefillLeases.LeaseInfo l : leases.snapshot(1000)) {
            ObjectNode o = sessions.addObject();
            o.put("session_id", l.sessionId());
            o.put("blocks", l.blocks());
            o.put("age_ms", l.ageMillis());
        }
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /**
     * {@code POST /distserve/p2p_initialize {"remote_engine_id", "protocol"?}}: our endpoint for that transport (no
     * protocol: our preferred one) and our layout, for that peer.
     */
    public void p2pInitialize(Exchange exchange) throws IOException {
        JsonNode body = body(exchange);
        String remote = text(body, "remote_engine_id");
        JsonNode protocol = body.get("protocol");
        if (protocol != null && !protocol.isNull() && !protocol.isTextual()) {
            throw OpenAiException.badRequest("protocol", "'protocol' must be a transport name such as tcp or nvlink.");
        }
        String p = protocol == null || protocol.isNull() || protocol.asText().isBlank() ? null : protocol.asText();
        RdmaSettings rdma = RdmaSettings.parse(body.get("rdma_config"));
        Replies.json(exchange, 200, json.writeValueAsString(migration.initialize(remote, p, rdma)));
    }

    /**
     * {@code POST /distserve/p2p_connect {"remote_engine_id", "remote_url", "remote_endpoint", "remote_kv_layout"}}
     * (the last two as {@code p2p_initialize} returned them from the peer).
     */
    public void p2pConnect(Exchange exchange) throws IOException {
        JsonNode body = body(exchange);
        String remote = text(body, "remote_engine_id");
        URI url = url(text(body, "remote_url"));
        migration.connect(remote, url, Endpoints.read(body.get("remote_endpoint"), "remote_endpoint"),
                KvLayouts.read(body.path("remote_kv_layout"), "remote_kv_layout"));
        ObjectNode out = json.createObjectNode();
        out.put("engine_id", node.engineId());
        out.put("connected", remote);
        out.put("protocol", body.path("remote_endpoint").path("transport").asText());
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /** {@code POST /distserve/p2p_drop_connect {"remote_engine_id"}}. */
    public void p2pDropConnect(Exchange exchange) throws IOException {
        String remote = text(body(exchange), "remote_engine_id");
        ObjectNode out = json.createObjectNode();
        out.put("dropped", migration.drop(remote));
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /**
     * {@code POST /distserve/free_cache {"remote_engine_id", "remote_session_id", "block_ids"?}}: ends a prefill
     * lease (with block_ids: only if the lease holds exactly those blocks).
     * remote_engine_id must be this engine's id, so a misrouted free cannot release someone else's blocks.
     */
    public void freeCache(Exchange exchange) throws IOException {
        JsonNode body = body(exchange);
        String engineId = text(body, "remote_engine_id");
        String session = text(body, "remote_session_id");
        if (!engineId.equals(node.engineId())) {
            throw OpenAiException.badRequest("remote_engine_id", "This is engine " + node.engineId() + ", not "
                    + engineId + ".");
        }
        int[] blocks = null;
        JsonNode ids = body.get("block_ids");
        if (ids != null && !ids.isNull()) {
            if (!ids.isArray()) {
                throw OpenAiException.badRequest("block_ids", "'block_ids' must be a list of block ids.");
            }
            blocks = new int[ids.size()];
            for (int i = 0; i < blocks.length; i++) {
                if (!ids.get(i).canConvertToInt()) {
                    throw OpenAiException.badRequest("block_ids", "'block_ids' must be a list of block ids.");
                }
                blocks[i] = ids.get(i).asInt();
            }
        }
        ObjectNode out = json.createObjectNode();
        out.put("freed", leases.free(session, blocks));
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /**
     * {@code GET /distserve/prefix_cache?epoch=E&since=N}: the prefix cache's changes since a reader's cursor, for
     * a router that sends requests where their prefix is (the proxy's {@code kv_aware} strategy). Keys are the
     * chained block hashes as 16-digit hex; {@code epoch} is this engine's id, so a reader whose epoch is another
     * one's (a restarted engine, or a first call) gets a full snapshot ({@code reset: true}). Also the load a router
     * weighs: blocks referenced and in total.
     */
    public void prefixCache(Exchange exchange) throws IOException {
        String epoch = exchange.getIn().getHeader("epoch", String.class);
        String sinceParam = exchange.getIn().getHeader("since", String.class);
        long since = -1;
        if (sinceParam != null && !sinceParam.isBlank()) {
            try {
                since = Long.parseLong(sinceParam.trim());
            } catch (NumberFormatException e) {
                throw OpenAiException.badRequest("since", "'since' must be an integer cursor, got '" + sinceParam
                        + "'.");
            }
        }
        var blocks = node.engine().blockManager();
        ObjectNode out = json.createObjectNode();
        out.put("epoch", node.engineId());
        out.put("enabled", blocks.cachesPrefixes());
        out.put("blocks_used", blocks.usedCount());
        out.put("blocks_total", blocks.totalBlocks());
        out.put("block_size", migration.layout().blockSize());
        blocks.prefixHasher().ifPresent(h -> out.put("hash_salt", hex(h.salt())));
        PrefixCacheDelta delta = blocks.cacheChangesSince(node.engineId().equals(epoch) ? since : -1);
        out.put("next", delta.next());
        out.put("reset", delta.reset());
        ArrayNode stored = out.putArray("stored");
        for (long k : delta.stored()) {
            stored.add(hex(k));
        }
        ArrayNode removed = out.putArray("removed");
        for (long k : delta.removed()) {
            removed.add(hex(k));
        }
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    /** A block key as the prefix-cache feed writes it: 16 hex digits. */
    public static String hex(long key) {
        String h = Long.toHexString(key);
        return "0".repeat(16 - h.length()) + h;
    }

    /**
     * {@code GET /distserve/tokenizer}: the model's tokenizer files (those present of {@link ModelTokenizer#FILES}),
     * so that a router can compute a request's block keys exactly as this engine does.
     */
    public void tokenizerFiles(Exchange exchange) throws IOException {
        ObjectNode out = json.createObjectNode();
        out.put("model", node.modelName());
        ObjectNode files = out.putObject("files");
        for (String name : ModelTokenizer.FILES) {
            Path f = node.tokenizer().folder().resolve(name);
            if (Files.isRegularFile(f)) {
                files.put(name, Files.readString(f, StandardCharsets.UTF_8));
            }
        }
        Replies.json(exchange, 200, json.writeValueAsString(out));
    }

    private JsonNode body(Exchange exchange) {
        return JsonBodies.object(exchange, json);
    }

    private static String text(JsonNode body, String field) {
        JsonNode v = body.get(field);
        if (v == null || !v.isTextual() || v.asText().isBlank()) {
            throw OpenAiException.badRequest(field, "'" + field + "' must be a non-empty string.");
        }
        return v.asText();
    }

    private static URI url(String s) {
        try {
            URI u = URI.create(s);
            if (!("http".equals(u.getScheme()) || "https".equals(u.getScheme())) || u.getHost() == null) {
                throw new IllegalArgumentException("not an http(s) URL");
            }
            return u;
        } catch (IllegalArgumentException e) {
            throw OpenAiException.badRequest("remote_url", "'remote_url' must be http(s)://host:port: " + e.getMessage());
        }
    }
}
