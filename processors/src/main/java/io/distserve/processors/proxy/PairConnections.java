package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
 * which retries a bounded number of times. The truth lives in the engines (a decode engine's {@code engine_info}
 * lists the prefill engines it is connected to), so a restarted proxy learns existing connections instead of
 * reconnecting them, and a restarted engine (new engine id) is noticed and reconnected.
 */
public final class PairConnections {

    private static final Logger LOG = LoggerFactory.getLogger(PairConnections.class);

    public record Pair(String prefillUrl, String decodeUrl) {
    }

    private final NodeClient client;
    private final Duration timeout;
    private final int attempts;
    private final Map<Pair, CompletableFuture<String>> pairs = new ConcurrentHashMap<>();

    public PairConnections(NodeClient client, Duration timeout, int attempts) {
        this.client = client;
        this.timeout = timeout;
        this.attempts = attempts;
    }

    /**
     * Makes sure the decode engine is connected to the prefill engine; returns the prefill engine's id.
     *
     * @param prefillEngineId the id the prefill engine just answered with, or null; a different id than the one
     *                        the pool connected means the engine restarted, and the pair is connected again
     */
    public String ensure(String prefillUrl, String decodeUrl, String prefillEngineId) throws InterruptedException {
        Pair pair = new Pair(prefillUrl, decodeUrl);
        for (int round = 0; round < 2; round++) {
            CompletableFuture<String> mine = new CompletableFuture<>();
            CompletableFuture<String> f = pairs.putIfAbsent(pair, mine);
            if (f == null) {
                f = mine;
                try {
                    mine.complete(connect(pair));
                } catch (RuntimeException | InterruptedException e) {
                    pairs.remove(pair, mine);
                    mine.completeExceptionally(e);
                }
            }
            String id;
            try {
                id = f.get(timeout.toMillis() * (attempts + 1), TimeUnit.MILLISECONDS);
            } catch (ExecutionException e) {
                throw e.getCause() instanceof NodeFailure nf ? nf
                        : new NodeFailure(decodeUrl, "connecting to " + prefillUrl + " failed: " + e.getCause(), e);
            } catch (TimeoutException e) {
                throw new NodeFailure(decodeUrl, "connecting to " + prefillUrl + " timed out", e);
            }
            if (prefillEngineId == null || prefillEngineId.equals(id)) {
                return id;
            }
            LOG.info("prefill engine at {} is now {} (was {}): reconnecting {}", prefillUrl, prefillEngineId, id,
                    decodeUrl);
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
        List<Pair> out = new ArrayList<>();
        pairs.forEach((p, f) -> {
            if (f.isDone() && !f.isCompletedExceptionally()) {
                out.add(p);
            }
        });
        return out;
    }

    private String connect(Pair pair) throws InterruptedException {
        RuntimeException last = null;
        for (int attempt = 1; attempt <= attempts; attempt++) {
            try {
                return connectOnce(pair);
            } catch (NodeFailure e) {
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

    private String connectOnce(Pair pair) throws InterruptedException {
        ObjectMapper json = client.json();
        JsonNode prefill = client.getJson(pair.prefillUrl(), "/distserve/engine_info", timeout);
        JsonNode decode = client.getJson(pair.decodeUrl(), "/distserve/engine_info", timeout);
        String prefillId = prefill.path("engine_id").asText();
        String decodeId = decode.path("engine_id").asText();
        for (JsonNode peer : decode.path("peers")) {
            if (peer.asText().equals(prefillId)) {
                LOG.debug("{} already connected to {}", pair.decodeUrl(), pair.prefillUrl());
                return prefillId;
            }
        }
        ObjectNode init = json.createObjectNode();
        init.put("remote_engine_id", decodeId);
        JsonNode endpoint = client.postJson(pair.prefillUrl(), "/distserve/p2p_initialize", init, timeout);
        ObjectNode connect = json.createObjectNode();
        connect.put("remote_engine_id", prefillId);
        connect.put("remote_url", pair.prefillUrl());
        connect.set("remote_endpoint", endpoint.path("endpoint"));
        connect.set("remote_kv_layout", endpoint.path("kv_layout"));
        client.postJson(pair.decodeUrl(), "/distserve/p2p_connect", connect, timeout);
        LOG.info("connected {} ({}) -> {} ({})", pair.decodeUrl(), decodeId, pair.prefillUrl(), prefillId);
        return prefillId;
    }
}
