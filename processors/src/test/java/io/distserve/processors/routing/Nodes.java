package io.distserve.processors.routing;

import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeView;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.stream.Collectors;

/** Builds candidate snapshots for strategy tests. */
final class Nodes {

    private Nodes() {
    }

    static NodeView node(String name, Double speed) {
        return node(name, speed, 0);
    }

    static NodeView node(String name, Double speed, int inFlight) {
        return NodeView.of(url(name), NodeRole.Prefill, speed, inFlight, null, 0, 0);
    }

    /** A node with history: {@code completed} requests with the given mean latency. */
    static NodeView observed(String name, double meanMs, int inFlight) {
        return NodeView.of(url(name), NodeRole.Prefill, null, inFlight, meanMs, 10, 0);
    }

    static String url(String name) {
        return "http://" + name + ":8000";
    }

    /** How often each node was picked, by url. */
    static Map<String, Long> histogram(List<NodeView> picks) {
        return picks.stream().collect(Collectors.groupingBy(NodeView::url, TreeMap::new, Collectors.counting()));
    }

    static <T> Map<String, T> byUrl(List<NodeView> nodes, Function<NodeView, T> f) {
        return nodes.stream().collect(Collectors.toMap(NodeView::url, f));
    }
}
