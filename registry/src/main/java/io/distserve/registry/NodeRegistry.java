package io.distserve.registry;

import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.SortedSet;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The proxy's table of engine nodes: who they are (URL, role, models, speed), how loaded they are (requests in
 * flight), how fast they have been (a window of recent latencies, which age out), how reliable (completed and failed requests)
 * and whether they are healthy.
 *
 * <p>Thread-safety: reads (routing, status) never lock. The table itself is an immutable map replaced on each
 * add or remove under one lock, which also orders the writes to the store so the file always matches the last
 * change; per-node counters are atomics updated by {@link NodeLease}s.
 *
 * <p>Persistence: every change of a node's identity or declaration (add, update that changes role, models or
 * speed, remove) saves the table to the {@link NodeTableStore}; counters and health are not saved. A failed save
 * is logged and the change stands in memory: serving must not stop because a disk is full. Nodes loaded at
 * construction start HEALTHY (they were serving when the table was saved) and the health checker's first round,
 * which runs at once when it starts, takes out the ones that did not come back.
 */
public final class NodeRegistry {

    private static final Logger LOG = LoggerFactory.getLogger(NodeRegistry.class);

    private final NodeTableStore store;
    private final TimeSource time;
    private final LatencySettings latency;
    private final Object writeLock = new Object();
    private volatile Map<String, TrackedNode> table;

    /** How many completed requests the mean latency covers by default. */
    public static final int DEFAULT_LATENCY_WINDOW = LatencyWindow.DEFAULT_CAPACITY;

    /** How long a latency sample counts by default: a node's slow answer is forgotten after this. */
    public static final Duration DEFAULT_LATENCY_MAX_AGE = Duration.ofSeconds(30);

    /**
     * A registry with the default latency window ({@value LatencyWindow#DEFAULT_CAPACITY} requests, each counted
     * for {@link #DEFAULT_LATENCY_MAX_AGE}).
     */
    public NodeRegistry(NodeTableStore store, TimeSource time) {
        this(store, time, LatencyWindow.DEFAULT_CAPACITY);
    }

    /** @param latencyWindow how many recent completed requests the mean latency covers */
    public NodeRegistry(NodeTableStore store, TimeSource time, int latencyWindow) {
        this(store, time, latencyWindow, DEFAULT_LATENCY_MAX_AGE);
    }

    /**
     * Creates the registry and loads the saved table from {@code store}.
     *
     * @param latencyWindow  how many recent completed requests the mean latency covers
     * @param latencyMaxAge  how long a completed request's latency counts; a node none of whose requests ended
     *                       within it is "stale": its mean latency is unknown again and routing measures it afresh
     */
    public NodeRegistry(NodeTableStore store, TimeSource time, int latencyWindow, Duration latencyMaxAge) {
        this.store = Objects.requireNonNull(store, "store");
        this.time = Objects.requireNonNull(time, "time");
        this.latency = new LatencySettings(latencyWindow, latencyMaxAge, time);
        Map<String, TrackedNode> loaded = new LinkedHashMap<>();
        for (PersistedNode saved : store.load()) {
            loaded.put(saved.url(), newNode(saved.url(), saved.toStatus()));
        }
        this.table = Collections.unmodifiableMap(loaded);
    }

    /** A registry that keeps nothing between runs, on the system clocks. */
    public static NodeRegistry inMemory() {
        return new NodeRegistry(NodeTableStore.none(), TimeSource.system());
    }

    private TrackedNode newNode(String url, NodeStatus status) {
        return new TrackedNode(url, status, HealthState.healthy(time.now()), latency);
    }

    /**
     * Adds a node, or updates it when its URL (after normalization) is already in the table: one URL is one node.
     * An update keeps the node's counters and in-flight requests and re-admits it if it was unhealthy, since a
     * node that registers is alive.
     *
     * @throws IllegalArgumentException when the URL is invalid
     */
    public NodeView register(String url, NodeStatus status) {
        String key = NodeUrl.normalize(url);
        Objects.requireNonNull(status, "status");
        synchronized (writeLock) {
            TrackedNode existing = table.get(key);
            if (existing == null) {
                TrackedNode node = newNode(key, status);
                Map<String, TrackedNode> next = new LinkedHashMap<>(table);
                next.put(key, node);
                table = Collections.unmodifiableMap(next);
                persist();
                LOG.info("Added node {} ({}, models {}, speed {})", key, status.role(), status.models(),
                        status.speed());
                return node.view();
            }
            NodeStatus before = existing.status();
            boolean adopted = existing.source() != NodeSource.API;
            existing.source(NodeSource.API);
            existing.status(status);
            HealthState health = existing.health();
            if (!health.isHealthy()) {
                existing.updateHealth(h -> h.afterSuccess(time.now()));
                LOG.info("Node {} registered again after being unhealthy since {}; re-admitted", key,
                        health.since());
            }
            if (adopted || !before.withoutExtra().equals(status.withoutExtra())) {
                persist();
                LOG.info("Updated node {} ({}, models {}, speed {})", key, status.role(), status.models(),
                        status.speed());
            }
            return existing.view();
        }
    }

    /**
     * Removes a node. Requests already sent to it finish normally (their leases release a detached entry).
     *
     * @return whether the node was in the table
     * @throws IllegalArgumentException when the URL is invalid
     */
    public boolean remove(String url) {
        String key = NodeUrl.normalize(url);
        synchronized (writeLock) {
            if (!table.containsKey(key)) {
                return false;
            }
            Map<String, TrackedNode> next = new LinkedHashMap<>(table);
            next.remove(key);
            table = Collections.unmodifiableMap(next);
            persist();
        }
        LOG.info("Removed node {}", key);
        return true;
    }

    /**
     * Removes a node only if it is still unhealthy and has been since {@code cutoff} or earlier, checked under the
     * table lock so a node that re-registered a moment ago is not removed.
     */
    public boolean removeIfUnhealthySince(String url, Instant cutoff) {
        String key = NodeUrl.normalize(url);
        synchronized (writeLock) {
            TrackedNode node = table.get(key);
            if (node == null) {
                return false;
            }
            HealthState health = node.health();
            if (health.isHealthy() || health.since().isAfter(cutoff)) {
                return false;
            }
            Map<String, TrackedNode> next = new LinkedHashMap<>(table);
            next.remove(key);
            table = Collections.unmodifiableMap(next);
            persist();
            return true;
        }
    }

    // ------------------------------------------------------------------------- nodes discovered through Consul

    /**
     * Adds or updates a node discovered as a passing instance in Consul ({@link NodeSource#CONSUL}). Such nodes are
     * never saved to the node-table file. A node already added through the API keeps its source and declaration:
     * the operator's entry wins, and it does not leave when Consul drops it. An update of a Consul node re-admits it
     * if it was unhealthy, as a registration does.
     *
     * @return the node's view after the change
     */
    public NodeView registerDiscovered(String url, NodeStatus status) {
        String key = NodeUrl.normalize(url);
        Objects.requireNonNull(status, "status");
        synchronized (writeLock) {
            TrackedNode existing = table.get(key);
            if (existing == null) {
                TrackedNode node = new TrackedNode(key, status, HealthState.healthy(time.now()), latency,
                        NodeSource.CONSUL);
                Map<String, TrackedNode> next = new LinkedHashMap<>(table);
                next.put(key, node);
                table = Collections.unmodifiableMap(next);
                LOG.info("Added node {} from Consul ({}, models {})", key, status.role(), status.models());
                return node.view();
            }
            if (existing.source() == NodeSource.CONSUL) {
                existing.status(status);
                if (!existing.health().isHealthy()) {
                    existing.updateHealth(h -> h.afterSuccess(time.now()));
                }
            }
            return existing.view();
        }
    }

    /**
     * Removes a node that was discovered through Consul and is no longer a passing instance there; a node added
     * through the API is left alone.
     *
     * @return whether a Consul node was removed
     */
    public boolean removeDiscovered(String url) {
        String key = NodeUrl.normalize(url);
        synchronized (writeLock) {
            TrackedNode node = table.get(key);
            if (node == null || node.source() != NodeSource.CONSUL) {
                return false;
            }
            Map<String, TrackedNode> next = new LinkedHashMap<>(table);
            next.remove(key);
            table = Collections.unmodifiableMap(next);
        }
        LOG.info("Removed node {}: no longer a passing instance in Consul", key);
        return true;
    }

    /** Saves the API nodes (Consul's are Consul's to keep). */
    private void persist() {
        List<PersistedNode> nodes = new ArrayList<>(table.size());
        for (TrackedNode node : table.values()) {
            if (node.source() == NodeSource.API) {
                nodes.add(PersistedNode.of(node.url(), node.status()));
            }
        }
        try {
            store.save(nodes);
        } catch (IOException | RuntimeException e) {
            LOG.error("Could not save the node table ({} node(s)); the change stands in memory only", nodes.size(),
                    e);
        }
    }

    /** Every node, healthy or not, in the order they were added: the {@code GET /nodes/status} view. */
    public List<NodeView> nodes() {
        Map<String, TrackedNode> current = table;
        List<NodeView> views = new ArrayList<>(current.size());
        for (TrackedNode node : current.values()) {
            views.add(node.view());
        }
        return views;
    }

    /** One node's view, if it is in the table. */
    public Optional<NodeView> node(String url) {
        return Optional.ofNullable(table.get(NodeUrl.normalize(url))).map(TrackedNode::view);
    }

    /** What one node declared when it last registered, including the extra fields it reported. */
    public Optional<NodeStatus> status(String url) {
        return Optional.ofNullable(table.get(NodeUrl.normalize(url))).map(TrackedNode::status);
    }

    public int size() {
        return table.size();
    }

    /**
     * The nodes a request may be routed to: healthy, of exactly {@code role} (a Hybrid node is not a Prefill
     * candidate: it would keep the KV without a decode node pulling it), serving {@code model}; a null or blank
     * model accepts any node of the role.
     */
    public List<NodeView> candidates(String model, NodeRole role) {
        Objects.requireNonNull(role, "role");
        List<NodeView> out = new ArrayList<>();
        for (TrackedNode node : table.values()) {
            NodeStatus status = node.status();
            if (status.role() == role && status.serves(model) && node.health().isHealthy()) {
                out.add(node.view());
            }
        }
        return out;
    }

    /** The distinct model names served by healthy nodes, sorted: the proxy's {@code GET /v1/models}. */
    public SortedSet<String> servedModels() {
        SortedSet<String> models = new TreeSet<>();
        for (TrackedNode node : table.values()) {
            if (node.health().isHealthy()) {
                models.addAll(node.status().models());
            }
        }
        return models;
    }

    /**
     * Counts a request as in flight on the node until the returned lease ends. Empty when the node is no longer
     * in the table (removed between routing and sending): the caller routes again.
     */
    public Optional<NodeLease> acquire(String url) {
        // routing passes the table's own (normalized) URL: normalizing again, per request, is the slow path
        TrackedNode node = table.get(url);
        if (node == null) {
            node = table.get(NodeUrl.normalize(url));
        }
        return node == null ? Optional.empty() : Optional.of(new NodeLease(node, time));
    }

    /**
     * Applies a health transition to a node (see {@link HealthState}); empty when the node is not in the table.
     */
    public Optional<HealthState> updateHealth(String url, UnaryOperator<HealthState> transition) {
        TrackedNode node = table.get(NodeUrl.normalize(url));
        return node == null ? Optional.empty() : Optional.of(node.updateHealth(transition));
    }
}
