package io.distserve.processors.routing;

import io.distserve.registry.NodeView;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Random;

/**
 * {@code min_expected_latency}: the node where the new request is expected to finish first, i.e. with the
 * fewest requests per unit of speed once this one is added: {@code (inFlight + 1) / speed}. Counting the new
 * request matters when nodes are idle: {@code inFlight / speed} would be 0 everywhere and a slow idle node would
 * win as often as a fast one. Under load the counts settle proportional to speed (equal for equal speeds).
 * Speeds as in {@link EffectiveSpeeds}; ties broken at random.
 */
public final class MinExpectedLatencyStrategy implements RoutingStrategy {

    public static final String NAME = "min_expected_latency";

    /** Scores this close (relatively) are ties: (1+1)/3 and 2/3 must compare equal despite rounding. */
    private static final double TIE = 1e-9;

    private final Random random;

    public MinExpectedLatencyStrategy(Random random) {
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
        double[] speeds = EffectiveSpeeds.of(candidates);
        double best = Double.POSITIVE_INFINITY;
        List<NodeView> tied = new ArrayList<>();
        for (int i = 0; i < speeds.length; i++) {
            NodeView node = candidates.get(i);
            double score = (node.inFlight() + 1.0) / speeds[i];
            if (score < best * (1 - TIE)) {
                best = score;
                tied.clear();
                tied.add(node);
            } else if (score <= best * (1 + TIE)) {
                tied.add(node);
            }
        }
        return Optional.of(RandomChoice.among(tied, random));
    }
}
