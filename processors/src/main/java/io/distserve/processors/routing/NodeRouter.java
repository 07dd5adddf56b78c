package io.distserve.processors.routing;

import io.distserve.registry.NodeLease;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeView;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * Routes one request: takes the registry's candidates, lets the strategy choose, and leases the chosen node, so
 * the caller holds an in-flight count from the moment the node is chosen.
 */
public final class NodeRouter {

    private final NodeRegistry registry;
    private final RoutingStrategy strategy;

    public NodeRouter(NodeRegistry registry, RoutingStrategy strategy) {
        this.registry = Objects.requireNonNull(registry, "registry");
        this.strategy = Objects.requireNonNull(strategy, "strategy");
    }

    public RoutingStrategy strategy() {
        return strategy;
    }

    /**
     * Whether any node in the table, of any role and health, serves {@code model} (null: any model): a model no
     * node knows is the client's mistake (404), one whose nodes are all down or busy elsewhere is a 503.
     */
    public boolean knows(String model) {
        if (model == null || model.isBlank()) {
            return true;
        }
        return registry.nodes().stream().anyMatch(node -> node.models().contains(model));
    }

    /** A lease on a node of {@code role} serving {@code model} (any node of the role when null); empty if none. */
    public Optional<NodeLease> acquire(String model, NodeRole role) {
        return acquire(model, role, Set.of());
    }

    /**
     * As {@link #acquire(String, NodeRole)}, skipping the nodes whose normalized URLs are in {@code excluded}
     * (the node that just failed, when retrying elsewhere).
     */
    public Optional<NodeLease> acquire(String model, NodeRole role, Set<String> excluded) {
        return acquire(model, role, excluded, null);
    }

    /** As {@link #acquire(String, NodeRole, Set)}, for a request whose prompt the strategy may weigh (or null). */
    public Optional<NodeLease> acquire(String model, NodeRole role, Set<String> excluded, PromptPrefix prompt) {
        List<NodeView> candidates = new ArrayList<>(registry.candidates(model, role));
        candidates.removeIf(node -> excluded.contains(node.url()));
        // A chosen node can leave the table before it is leased; choose again among the others.
        while (!candidates.isEmpty()) {
            Optional<NodeView> chosen = prompt == null ? strategy.select(candidates)
                    : strategy.select(candidates, prompt);
            if (chosen.isEmpty()) {
                return Optional.empty();
            }
            Optional<NodeLease> lease = registry.acquire(chosen.get().url());
            if (lease.isPresent()) {
                return lease;
            }
            candidates.remove(chosen.get());
        }
        return Optional.empty();
    }
}
