package io.distserve.processors.routing;

import static io.distserve.processors.routing.Nodes.node;
import static io.distserve.processors.routing.Nodes.url;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.distserve.registry.NodeView;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class RandomStrategyTest {

    private static final int DRAWS = 60_000;

    private final RandomStrategy strategy = new RandomStrategy(new Random(42));

    private Map<String, Double> shares(List<NodeView> candidates) {
        Map<String, Double> counts = new HashMap<>();
        for (int i = 0; i < DRAWS; i++) {
            counts.merge(strategy.select(candidates).orElseThrow().url(), 1.0 / DRAWS, Double::sum);
        }
        return counts;
    }

    @Test
    void picksInProportionToDeclaredSpeed() {
        Map<String, Double> shares = shares(List.of(node("a", 1.0), node("b", 2.0), node("c", 3.0)));
        assertThat(shares.get(url("a"))).isCloseTo(1 / 6.0, within(0.01));
        assertThat(shares.get(url("b"))).isCloseTo(2 / 6.0, within(0.01));
        assertThat(shares.get(url("c"))).isCloseTo(3 / 6.0, within(0.01));
    }

    @Test
    void isUniformWhenNoNodeDeclaresASpeed() {
        Map<String, Double> shares = shares(List.of(node("a", null), node("b", null), node("c", null),
                node("d", null)));
        assertThat(shares.values()).hasSize(4).allSatisfy(s -> assertThat(s).isCloseTo(0.25, within(0.01)));
    }

    @Test
    void aNodeWithoutASpeedGetsTheMeanOfTheDeclaredOnes() {
        Map<String, Double> shares = shares(List.of(node("a", 2.0), node("b", null), node("c", 4.0)));
        assertThat(shares.get(url("a"))).isCloseTo(2 / 9.0, within(0.01));
        assertThat(shares.get(url("b"))).isCloseTo(3 / 9.0, within(0.01));
        assertThat(shares.get(url("c"))).isCloseTo(4 / 9.0, within(0.01));
    }

    @Test
    void ignoresLoadAndHandlesTheEdges() {
        assertThat(strategy.select(List.of())).isEmpty();
        NodeView only = node("a", 5.0, 100);
        assertThat(strategy.select(List.of(only))).contains(only);
        Map<String, Double> shares = shares(List.of(node("busy", null, 50), node("idle", null, 0)));
        assertThat(shares.get(url("busy"))).isCloseTo(0.5, within(0.01));
    }
}
