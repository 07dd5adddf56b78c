package io.distserve.processors.routing;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.registry.NodeLease;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeStatus;
import io.distserve.registry.NodeView;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class NodeRouterTest {

    private static final String P1 = "http://10.0.0.1:23333";
    private static final String P2 = "http://10.0.0.2:23333";
    private static final String D1 = "http://10.0.0.3:23334";

    private final NodeRegistry registry = NodeRegistry.inMemory();
    private final NodeRouter router =
            new NodeRouter(registry, RoutingStrategies.byName("min_expected_latency", new Random(5)));

    private void register(String url, NodeRole role, String model) {
        registry.register(url, new NodeStatus(role, List.of(model), null));
    }

    @Test
    void leasesSpreadOverTheRegistrysRealInFlightCounts() {
        register(P1, NodeRole.Prefill, "qwen");
        register(P2, NodeRole.Prefill, "qwen");
        register(D1, NodeRole.Decode, "qwen");
        List<NodeLease> leases = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            leases.add(router.acquire("qwen", NodeRole.Prefill).orElseThrow());
        }
        assertThat(registry.nodes()).extracting(NodeView::inFlight).containsExactly(5, 5, 0);
        leases.forEach(NodeLease::close);
        assertThat(registry.nodes()).extracting(NodeView::inFlight).containsOnly(0);
    }

    @Test
    void excludesTheNodesItIsToldToAndFindsNothingWhenNoneIsLeft() {
        register(P1, NodeRole.Prefill, "qwen");
        register(P2, NodeRole.Prefill, "qwen");
        for (int i = 0; i < 20; i++) {
            try (NodeLease lease = router.acquire("qwen", NodeRole.Prefill, Set.of(P1)).orElseThrow()) {
                assertThat(lease.url()).isEqualTo(P2);
            }
        }
        assertThat(router.acquire("qwen", NodeRole.Prefill, Set.of(P1, P2))).isEmpty();
        assertThat(router.acquire("llama", NodeRole.Prefill)).isEmpty();
        assertThat(router.acquire("qwen", NodeRole.Decode)).isEmpty();
    }

    @Test
    void aNodeRemovedBetweenChoiceAndLeaseIsSkipped() {
        register(P1, NodeRole.Prefill, "qwen");
        register(P2, NodeRole.Prefill, "qwen");
        RoutingStrategy removesItsChoice = new RoutingStrategy() {
            @Override
            public String name() {
                return "test";
            }

            @Override
            public Optional<NodeView> select(List<NodeView> candidates) {
                NodeView first = candidates.get(0);
                if (first.url().equals(P1)) {
                    registry.remove(P1);
                }
                return Optional.of(first);
            }
        };
        NodeLease lease = new NodeRouter(registry, removesItsChoice).acquire("qwen", NodeRole.Prefill).orElseThrow();
        assertThat(lease.url()).isEqualTo(P2);
        lease.close();
    }
}
