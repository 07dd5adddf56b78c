package io.distserve.processors.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import org.junit.jupiter.api.Test;

class RoutingStrategiesTest {

    @Test
    void createsEachStrategyByItsLmdeployName() {
        assertThat(RoutingStrategies.byName("random")).isInstanceOf(RandomStrategy.class);
        assertThat(RoutingStrategies.byName("min_expected_latency", new Random(1)))
                .isInstanceOf(MinExpectedLatencyStrategy.class);
        assertThat(RoutingStrategies.byName("MIN_OBSERVED_LATENCY").name()).isEqualTo("min_observed_latency");
        for (String name : RoutingStrategies.NAMES) {
            assertThat(RoutingStrategies.byName(name).name()).isEqualTo(name);
        }
    }

    @Test
    void anUnknownNameListsTheValidOnes() {
        assertThatThrownBy(() -> RoutingStrategies.byName("round_robin"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("Unknown routing strategy 'round_robin'; expected one of random, min_expected_latency,"
                        + " min_observed_latency");
        assertThatThrownBy(() -> RoutingStrategies.byName(null)).isInstanceOf(IllegalArgumentException.class);
    }
}
