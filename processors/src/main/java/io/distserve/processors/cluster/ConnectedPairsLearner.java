package io.distserve.processors.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.processors.proxy.NodeClient;
import io.distserve.processors.proxy.NodeFailure;
import io.distserve.processors.proxy.PairConnections;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeView;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fills a proxy's connection pool from what the engines say, without connecting anything: every decode engine's
 * {@code GET /distserve/engine_info} lists the prefill engines it is connected to ("peers"), and each such
 * (prefill, decode) pair in the table is entered into the pool through {@link PairConnections#ensure}, which finds
 * the pair already connected and returns. A pair the decode does not list is left alone (it connects lazily on the
 * first request, as before). Used when nodes arrive from Consul, so that a proxy started against an existing
 * cluster, or a second proxy, knows the connected pairs at once instead of needing a warmup.
 */
public final class ConnectedPairsLearner {

    private static final Logger LOG = LoggerFactory.getLogger(ConnectedPairsLearner.class);

    private final NodeRegistry registry;
    private final NodeClient client;
    private final PairConnections pairs;
    private final Duration timeout;

    public ConnectedPairsLearner(NodeRegistry registry, NodeClient client, PairConnections pairs, Duration timeout) {
        this.registry = registry;
        this.client = client;
        this.pairs = pairs;
        this.timeout = timeout;
    }

    /** Learns the connected pairs among the healthy nodes now; returns how many pairs it entered. */
    public int learn() throws InterruptedException {
        Map<String, String> prefillIds = new HashMap<>();
        for (NodeView p : registry.candidates(null, NodeRole.Prefill)) {
            try {
                String id = client.getJson(p.url(), "/distserve/engine_info", timeout).path("engine_id").asText("");
                if (!id.isEmpty()) {
                    prefillIds.put(p.url(), id);
                }
            } catch (NodeFailure e) {
                LOG.debug("engine_info of {} failed: {}", p.url(), e.getMessage());
            }
        }
        if (prefillIds.isEmpty()) {
            return 0;
        }
        Set<PairConnections.Pair> known = new HashSet<>(pairs.connected());
        int learned = 0;
        for (NodeView d : registry.candidates(null, NodeRole.Decode)) {
            Set<String> peers = new HashSet<>();
            try {
                for (JsonNode peer : client.getJson(d.url(), "/distserve/engine_info", timeout).path("peers")) {
                    peers.add(peer.asText());
                }
            } catch (NodeFailure e) {
                LOG.debug("engine_info of {} failed: {}", d.url(), e.getMessage());
                continue;
            }
            for (Map.Entry<String, String> p : prefillIds.entrySet()) {
                if (!peers.contains(p.getValue()) || known.contains(new PairConnections.Pair(p.getKey(), d.url()))) {
                    continue;
                }
                try {
                    pairs.ensure(p.getKey(), d.url(), p.getValue());
                    learned++;
                    LOG.info("learned from {} that it is connected to {} ({})", d.url(), p.getKey(), p.getValue());
                } catch (NodeFailure e) {
                    LOG.debug("could not enter {} -> {}: {}", d.url(), p.getKey(), e.getMessage());
                }
            }
        }
        return learned;
    }
}
