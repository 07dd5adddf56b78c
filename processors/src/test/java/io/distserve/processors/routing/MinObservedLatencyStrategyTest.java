package io.distserve.processors.routing;

import static io.distserve.processors.routing.Nodes.observed;
import static io.distserve.processors.routing.Nodes.url;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeView;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class MinObservedLatencyStrategyTest {

    private final MinObservedLatencyStrategy strategy = new MinObservedLatencyStrategy(new Random(3));

    private static NodeView fresh(String name, int inFlight) {
        return NodeView.of(url(name), NodeRole.Decode, null, inFlight, null, 0, 0);
    }

    private static NodeView failing(String name, int inFlight) {
        return NodeView.of(url(name), NodeRole.Decode, null, inFlight, null, 0, 4);
    }

    private String pick(NodeView... candidates) {
        return strategy.select(List.of(candidates)).orElseThrow().url();
    }

    @Test
    void theLowestMeanLatencyWins() {
        for (int i = 0; i < 100; i++) {
            assertThat(pick(observed("a", 80, 0), observed("b", 20, 5), observed("c", 50, 0)))
                    .isEqualTo(url("b"));
        }
    }

    @Test
    void aNewNodeIsTriedFirstThenOnlyOnceUntilItAnswers() {
        NodeView slow = observed("slow", 90, 0);
        NodeView quick = observed("quick", 30, 0);
        assertThat(pick(slow, quick, fresh("new", 0))).isEqualTo(url("new"));
        // Its first request is in flight: it is being tried, not new, so traffic goes back to the fastest.
        for (int i = 0; i < 100; i++) {
            assertThat(pick(slow, quick, fresh("new", 1))).isEqualTo(url("quick"));
        }
        // It answered in 10 ms: now it is simply the fastest.
        assertThat(pick(slow, quick, observed("new", 10, 0))).isEqualTo(url("new"));
        // It answered in 60 ms: it ranks by its latency like everyone else.
        assertThat(pick(slow, quick, observed("new", 60, 0))).isEqualTo(url("quick"));
    }

    @Test
    void severalNewNodesAreTriedInRandomOrder() {
        List<NodeView> candidates = List.of(observed("old", 5, 0), fresh("n1", 0), fresh("n2", 0), fresh("n3", 0));
        List<NodeView> picks = new ArrayList<>();
        for (int i = 0; i < 30_000; i++) {
            picks.add(strategy.select(candidates).orElseThrow());
        }
        Map<String, Long> histogram = Nodes.histogram(picks);
        assertThat(histogram).containsOnlyKeys(url("n1"), url("n2"), url("n3"));
        assertThat(histogram.values()).allSatisfy(n -> assertThat(n / 30_000.0).isCloseTo(1 / 3.0, within(0.015)));
    }

    @Test
    void whenEveryNodeIsBeingTriedTheLeastLoadedIsUsed() {
        for (int i = 0; i < 100; i++) {
            assertThat(pick(fresh("a", 3), fresh("b", 1), fresh("c", 2))).isEqualTo(url("b"));
        }
    }

    @Test
    void aNodeThatOnlyFailsIsNotMistakenForANewOne() {
        for (int i = 0; i < 100; i++) {
            assertThat(pick(failing("broken", 0), observed("ok", 500, 3))).isEqualTo(url("ok"));
        }
        // With nothing better, it is still routable (health checks decide whether it is in the set).
        assertThat(pick(failing("broken", 0), fresh("trying", 2))).isEqualTo(url("broken"));
        assertThat(strategy.select(List.of())).isEmpty();
    }
}
