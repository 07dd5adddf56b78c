package io.distserve.processors.routing;

import io.distserve.registry.NodeView;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Random;

/**
 * {@code random}: each node with probability proportional to its speed (see {@link EffectiveSpeeds}); uniform
 * when no node declares a speed.
 */
public final class RandomStrategy implements RoutingStrategy {

    public static final String NAME = "random";

    private final Random random;

    public RandomStrategy(Random random) {
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
        double total = 0;
        for (double speed : speeds) {
            total += speed;
        }
        double point = random.nextDouble() * total;
        for (int i = 0; i < speeds.length; i++) {
            point -= speeds[i];
            if (point < 0) {
                return Optional.of(candidates.get(i));
            }
        }
        // Rounding left the point at the very end of the range: it belongs to the last node.
        return Optional.of(candidates.get(candidates.size() - 1));
    }
}
