package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.processors.disagg.RdmaSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The (prefill, decode) connection pool. A pair connects lazily, once: concurrent callers wait on the same attempt,
 * which retries a bounded number of times. The pair's KV transport is chosen by {@link MigrationProtocolChoice}
 * from the proxy's {@code --migration-protocol} and what both engines offer; a decode engine that refuses the best
 * candidate's endpoint ({@code endpoint_refused}: an nvlink handle it cannot open) gets the next one. The truth
 * lives in the engines (a decode engine's {@code engine_info} lists the prefill engines it is connected to, and over
 * what), so a restarted proxy learns existing connections instead of reconnecting them, and a restarted engine (new
 * engine id) is noticed and reconnected.
 */
public final class PairConnections {

    private static final Logger LOG = LoggerFactory.getLogger(PairConnections.class);

    public record Pair(String prefillUrl, String decodeUrl) {
    }

    /** A connected pair: the prefill engine's id and the transport its KV migrates over. */
    public record Link(String prefillEngineId, String protocol) {
    }

    private final NodeClient client;
    private final Duration timeout;
    private final int attempts;
    private final String protocol;
    private final RdmaSettings rdma;
    private final Map<Pair, CompletableFuture<Link>> pairs = new ConcurrentHashMap<>();

    /** @param protocol {@code --migration-protocol}: auto, tcp, nvlink or rdma (any case) */
    public PairConnections(NodeClient client, Duration timeout, int attempts, String protocol) {
        this(client, timeout, attempts, protocol, RdmaSettings.DEFAULTS);
    }

    /** @param rdma the proxy's --link-type and --disable-gdr, sent to prefill engines when a pair uses rdma */
    public PairConnections(NodeClient client, Duration timeout, int attempts, String protocol, RdmaSettings rdma) {
        this.rdma = rdma;
        this.client = client;
        this.timeout = timeout;
        this.attempts = attempts;
        this.protocol = MigrationProtocolChoice.normalize(protocol);
    }

    /** Over tcp only, as before there was a choice (tests). */
    public PairConnections(NodeClient client, Duration timeout, int attempts) {
        this(client, timeout, attempts, "tcp");
    }

    /**
     * Makes sure the decode engine is connected to the prefill engine; returns the prefill engine's id and the
     * pair's transport.
     *
     * @param prefillEngineId the id the prefill engine just answered with, or null; a different id than the one
     *                        the pool connected means the engine restarted, and the pair is connected again
     */
    public Link ensure(String prefillUrl, String decodeUrl, String prefillEngineId) throws InterruptedException {
        Pair pair = new Pair(prefillUrl, decodeUrl);
        for (int round = 0; round < 2; round++) {
            CompletableFuture<Link> mine = new CompletableFuture<>();
            CompletableFuture<Link> f = pairs.putIfAbsent(pair, mine);
            if (f == null) {
                f = mine;
                try {
                    mine.complete(connect(pair));
                } catch (RuntimeException | InterruptedException e) {
                    pairs.remove(pair, mine);
                    mine.completeExceptionally(e);
                }
            }
            Link link;
            try {
                link = f.get(timeout.toMillis() * (attempts + 1) * 2, TimeUnit.MILLISECONDS);
            } catch (ExecutionException e) {
                throw e.getCause() instanceof NodeFailure nf ? nf
                        : new NodeFailure(decodeUrl, "connecting to " + prefillUrl + " failed: " + e.getCause(), e);
            } catch (TimeoutException e) {
                throw new NodeFailure(decodeUrl, "connecting to " + prefillUrl + " timed out", e);
            }
            if (prefillEngineId == null || prefillEngineId.equals(link.prefillEngineId())) {
                return link;
            }
            LOG.info("prefill engine at {} is now {} (was {}): reconnecting {}", prefillUrl, prefillEngineId,
                    link.prefillEngineId(), decodeUrl);
            pairs.remove(pair, f);
        }
        throw new NodeFailure(prefillUrl, "engine id keeps changing; is it restarting?", null);
    }

    /** Forgets a pair (a migration said it is not connected); the next {@link #ensure} checks the engines again. */
    public void invalidate(String prefillUrl, String decodeUrl) {
        pairs.remove(new Pair(prefillUrl, decodeUrl));
    }

    /** Forgets every pair of a node (removed from the table). */
    public void forget(String nodeUrl) {
        pairs.keySet().removeIf(p -> p.prefillUrl().equals(nodeUrl) || p.decodeUrl().equals(nodeUrl));
    }

    /** Pairs known connected. */
    public List<Pair> connected() {
        return List.copyOf(links().keySet());
    }

    /** Pairs known connected, with their links. */
    public Map<Pair, Link> links() {
        Map<Pair, Link> out = new java.util.LinkedHashMap<>();
        pairs.forEach((p, f) -> {
            if (f.isDone() && !f.isCompletedExceptionally()) {
                out.put(p, f.join());
            }
        });
        return out;
    }

    private Link connect(Pair pair) throws InterruptedException {
        RuntimeException last = null;
        for (int attempt = 1; attempt <= attempts; attempt++) {
            try {
                return connectOnce(pair);
            } catch (NodeFailure e) {
                if (e.getCause() instanceof MigrationProtocolChoice.NoCommonTransport) {
                    throw e; // asking again will not change what the engines offer
                }
                last = e;
                LOG.warn("connecting {} -> {} (attempt {}/{}) failed: {}", pair.decodeUrl(), pair.prefillUrl(),
                        attempt, attempts, e.getMessage());
                if (attempt < attempts) {
                    Thread.sleep(100L << (attempt - 1));
                }
            }
        }
        throw last;
    }

    private Link connectOnce(Pair pair) throws InterruptedException {
        ObjectMapper json = client.json();
        JsonNode prefill = client.getJson(pair.prefillUrl(), "/distserve/engine_info", timeout);
        JsonNode decode = client.getJson(pair.decodeUrl(), "/distserve/engine_info", timeout);
        String prefillId = prefill.path("engine_id").asText();
        String decodeId = decode.path("engine_id").asText();
        List<String> candidates;
        try {
            candidates = MigrationProtocolChoice.candidates(protocol, MigrationProtocolChoice.Offer.of(prefill),
                    MigrationProtocolChoice.Offer.of(decode));
        } catch (MigrationProtocolChoice.NoCommonTransport e) {
            throw new NodeFailure(pair.decodeUrl(), e.getMessage(), e);
        }
        List<String> connectedOver = connectedOver(decode, prefillId);
        for (String c : candidates) {
            if (connectedOver.contains(c)) {
                LOG.debug("{} already connected to {} over {}", pair.decodeUrl(), pair.prefillUrl(), c);
                return new Link(prefillId, c);
            }
        }
        List<String> refused = new ArrayList<>();
        for (String c : candidates) {
            ObjectNode init = json.createObjectNode();
            init.put("remote_engine_id", decodeId);
            init.put("protocol", c);
            if (c.equals("rdma")) {
                init.set("rdma_config", rdma.toJson(json));
            }
            JsonNode endpoint = client.postJson(pair.prefillUrl(), "/distserve/p2p_initialize", init, timeout);
            ObjectNode connect = json.createObjectNode();
            connect.put("remote_engine_id", prefillId);
            connect.put("remote_url", pair.prefillUrl());
            connect.set("remote_endpoint", endpoint.path("endpoint"));
            connect.set("remote_kv_layout", endpoint.path("kv_layout"));
            NodeClient.Reply r;
            try {
                r = client.post(pair.decodeUrl(), "/distserve/p2p_connect", json.writeValueAsBytes(connect), timeout);
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
            if (r.status() == 200) {
                LOG.info("connected {} ({}) -> {} ({}) over {}", pair.decodeUrl(), decodeId, pair.prefillUrl(),
                        prefillId, c);
                return new Link(prefillId, c);
            }
            var error = client.clientError(r);
            if (r.status() == 400 && "endpoint_refused".equals(error.code())) {
                refused.add(c + ": " + error.getMessage());
                LOG.info("{} cannot use {}'s {} endpoint ({}); trying the next transport", pair.decodeUrl(),
                        pair.prefillUrl(), c, error.getMessage());
                continue;
            }
            throw new NodeFailure(pair.decodeUrl(), "HTTP " + r.status() + " from /distserve/p2p_connect: "
                    + NodeClient.abbreviate(r.body()), null);
        }
        throw new NodeFailure(pair.decodeUrl(), "decode engine " + decodeId + " refused every KV transport it "
                + "shares with prefill engine " + prefillId + ": " + String.join("; ", refused), null);
    }

    /** The transports the decode's {@code engine_info} says it is connected to the prefill over. */
    private static List<String> connectedOver(JsonNode decodeInfo, String prefillId) {
        List<String> out = new ArrayList<>();
        JsonNode byPeer = decodeInfo.path("peer_transports").path(prefillId);
        if (byPeer.isArray()) {
            byPeer.forEach(t -> out.add(t.asText().toLowerCase(java.util.Locale.ROOT)));
            return out;
        }
        for (JsonNode peer : decodeInfo.path("peers")) {
            if (peer.asText().equals(prefillId)) {
                out.add("tcp"); // an engine of an older build: tcp was its only transport
            }
        }
        return out;
    }
}
