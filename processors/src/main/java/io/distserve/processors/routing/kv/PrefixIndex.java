package io.distserve.processors.routing.kv;

import java.util.Collection;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/** The proxy's view of every engine's prefix cache, by node URL (normalized, as the registry keys nodes). */
public final class PrefixIndex {

    private final ConcurrentHashMap<String, NodePrefixIndex> byNode = new ConcurrentHashMap<>();

    /** The node's index once its feed answered; empty before, and after it failed (no stale preference). */
    public Optional<NodePrefixIndex> node(String url) {
        return Optional.ofNullable(byNode.get(url));
    }

    /** The node's index to update (created empty). */
    public NodePrefixIndex updating(String url) {
        return byNode.computeIfAbsent(url, u -> new NodePrefixIndex());
    }

    /** Forgets a node (its feed failed, or it left the table): routing then treats it as holding nothing. */
    public void drop(String url) {
        byNode.remove(url);
    }

    /** Forgets every node not in {@code urls}. */
    public void retainOnly(Collection<String> urls) {
        byNode.keySet().retainAll(urls);
    }

    public int size() {
        return byNode.size();
    }
}
