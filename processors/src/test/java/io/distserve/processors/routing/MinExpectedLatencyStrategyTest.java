package io.distserve.processors.routing;

import static io.distserve.processors.routing.Nodes.node;
import static io.distserve.processors.routing.Nodes.url;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.distserve.registry.NodeView;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class MinExpectedLatencyStrategyTest {

    private final Random random = new Random(7);
    private final MinExpectedLatencyStrategy strategy = new MinExpectedLatencyStrategy(random);

    /** Nodes by url with their speed, and a simulated in-flight count per node. */
    private final Map<String, Double> speeds = new LinkedHashMap<>();
    private final Map<String, Integer> inFlight = new HashMap<>();

    private List<NodeView> snapshot() {
        List<NodeView> views = new ArrayList<>();
        speeds.forEach((url, speed) -> views.add(
                node(url.substring(7, url.indexOf(':', 7)), speed, inFlight.getOrDefault(url, 0))));
        return views;
    }

    private String route() {
        String url = strategy.select(snapshot()).orElseThrow().url();
        inFlight.merge(url, 1, Integer::sum);
        return url;
    }

    @Test
    void equalNodesGetEqualLoad() {
        speeds.put(url("a"), null);
        speeds.put(url("b"), null);
        speeds.put(url("c"), null);
        for (int i = 0; i < 300; i++) {
            route();
            int max = inFlight.values().stream().mapToInt(Integer::intValue).max().orElseThrow();
            int min = speeds.keySet().stream().mapToInt(u -> inFlight.getOrDefault(u, 0)).min().orElseThrow();
            assertThat(max - min).isLessThanOrEqualTo(1);
        }
        assertThat(inFlight.values()).containsOnly(100);
    }

    @Test
    void loadSettlesInProportionToSpeed() {
        speeds.put(url("slow"), 1.0);
        speeds.put(url("mid"), 2.0);
        speeds.put(url("fast"), 3.0);
        for (int i = 0; i < 600; i++) {
            route();
        }
        assertThat(inFlight.get(url("slow"))).isBetween(99, 101);
        assertThat(inFlight.get(url("mid"))).isBetween(199, 201);
        assertThat(inFlight.get(url("fast"))).isBetween(299, 301);
    }

    @Test
    void staysBalancedWhileRequestsAlsoComplete() {
        speeds.put(url("a"), 2.0);
        speeds.put(url("b"), 2.0);
        speeds.put(url("c"), 2.0);
        for (int i = 0; i < 5_000; i++) {
            route();
            if (random.nextInt(3) > 0) {
                // A random busy node finishes one request.
                List<String> busy = new ArrayList<>();
                inFlight.forEach((u, n) -> {
                    if (n > 0) {
                        busy.add(u);
                    }
                });
                inFlight.merge(busy.get(random.nextInt(busy.size())), -1, Integer::sum);
            }
            int max = speeds.keySet().stream().mapToInt(u -> inFlight.getOrDefault(u, 0)).max().orElseThrow();
            int min = speeds.keySet().stream().mapToInt(u -> inFlight.getOrDefault(u, 0)).min().orElseThrow();
            // Routing only adds to the least loaded node; completions can widen the gap, routing closes it.
            assertThat(max - min).isLessThanOrEqualTo(3);
        }
    }

    @Test
    void anIdleFastNodeBeatsAnIdleSlowOne() {
        List<NodeView> idle = List.of(node("slow", 1.0), node("fast", 10.0));
        for (int i = 0; i < 100; i++) {
            assertThat(strategy.select(idle).orElseThrow().url()).isEqualTo(url("fast"));
        }
    }

    @Test
    void tiesAreBrokenAtRandom() {
        List<NodeView> idle = List.of(node("a", null), node("b", null), node("c", null));
        Map<String, Long> picks = new HashMap<>();
        for (int i = 0; i < 30_000; i++) {
            picks.merge(strategy.select(idle).orElseThrow().url(), 1L, Long::sum);
        }
        assertThat(picks.values()).hasSize(3)
                .allSatisfy(n -> assertThat(n / 30_000.0).isCloseTo(1 / 3.0, within(0.015)));
        // (2+1)/0.7 vs (0+1)/(0.7/3): equal in reals, a last-bit apart in doubles; still a tie.
        double speed = 0.7;
        assertThat((2 + 1) / speed).isNotEqualTo(1 / (speed / 3));
        List<NodeView> tied = List.of(node("x", speed, 2), node("y", speed / 3, 0));
        assertThat(Nodes.histogram(pick(tied, 2_000))).hasSize(2);
    }

    @Test
    void aNodeWithoutASpeedCountsAsTheMeanSpeed() {
        speeds.put(url("declared"), 4.0);
        speeds.put(url("undeclared"), null);
        for (int i = 0; i < 200; i++) {
            route();
        }
        assertThat(inFlight.get(url("declared"))).isEqualTo(100);
        assertThat(inFlight.get(url("undeclared"))).isEqualTo(100);
        assertThat(strategy.select(List.of())).isEmpty();
    }

    private List<NodeView> pick(List<NodeView> candidates, int n) {
        List<NodeView> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(strategy.select(candidates).orElseThrow());
        }
        return out;
    }
}
