package io.distserve.processors.routing;

import io.distserve.registry.NodeView;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Random;

/**
 * {@code min_observed_latency}: the node with the lowest recent mean latency, giving new nodes a chance (LMDeploy
 * never routes to a node without latency history, so a node added later never gets traffic).
 *
 * <p>The rule, in order:
 * <ol>
 *   <li><b>Untried</b> nodes first: no request has ended there (no completion, no failure) and none is in flight.
 *       Several: one at random. A <b>stale</b> node counts as untried: its requests all ended longer ago than the
 *       registry's latency max age ({@code distserve.proxy.latencyMaxAgeSeconds}), so its old latency is forgotten
 *       ({@link NodeView#hasHistory()}). Without that, one slow answer would starve a node forever: the slowest
 *       node gets no request, so nothing new ever replaces its slow sample.</li>
 *   <li>Otherwise the node with the lowest mean latency among those with a completed request within the max age;
 *       ties at random.</li>
 *   <li>Otherwise (every node is either being tried, i.e. no history but a request in flight, or has only
 *       failures) the one with the fewest requests in flight; ties at random.</li>
 * </ol>
 * A new node is therefore tried with one request at a time until one completes: it is "new" only while idle, so
 * concurrent requests do not all pile onto it. A node whose requests only fail (and so has no latency) is used only
 * when no node has a latency, rather than looking "new" forever.
 */
public final class MinObservedLatencyStrategy implements RoutingStrategy {

    public static final String NAME = "min_observed_latency";

    private final Random random;

    public MinObservedLatencyStrategy(Random random) {
        this.random = Objects.requireNonNull(random, "random");
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Optional<NodeView> select(List<NodeView> candidates) {
        if (candidates.isEmpty()) {
            return Optional.empty();
        }
        List<NodeView> untried = new ArrayList<>();
        List<NodeView> fastest = new ArrayList<>();
        double best = Double.POSITIVE_INFINITY;
        for (NodeView node : candidates) {
            if (!node.hasHistory() && node.inFlight() == 0) {
                untried.add(node);
            } else if (node.meanLatencyMs() != null) {
                double latency = node.meanLatencyMs();
                if (latency < best) {
                    best = latency;
                    fastest.clear();
                    fastest.add(node);
                } else if (latency == best) {
                    fastest.add(node);
                }
            }
        }
        if (!untried.isEmpty()) {
            return Optional.of(RandomChoice.among(untried, random));
        }
        if (!fastest.isEmpty()) {
            return Optional.of(RandomChoice.among(fastest, random));
        }
        return Optional.of(RandomChoice.among(leastLoaded(candidates), random));
    }

    private static List<NodeView> leastLoaded(List<NodeView> candidates) {
        int fewest = Integer.MAX_VALUE;
        List<NodeView> tied = new ArrayList<>();
        for (NodeView node : candidates) {
            if (node.inFlight() < fewest) {
                fewest = node.inFlight();
                tied.clear();
                tied.add(node);
            } else if (node.inFlight() == fewest) {
                tied.add(node);
            }
        }
        return tied;
    }
}
