package io.distserve.processors.routing;

import java.util.List;
import java.util.Locale;
import java.util.Random;

/** Creates routing strategies by their {@code --routing-strategy} names (LMDeploy's names). */
public final class RoutingStrategies {

    /** The valid names, in the order the CLI help lists them. */
    public static final List<String> NAMES =
            List.of(RandomStrategy.NAME, MinExpectedLatencyStrategy.NAME, MinObservedLatencyStrategy.NAME);

    /**
     * {@code kv_aware} is not among them: it needs the proxy's prefix index and tokenizers, so the proxy builds it
     * ({@link io.distserve.processors.routing.kv.KvAwareStrategy}).
     */
    public static boolean isKvAware(String name) {
        return name != null && name.trim().equalsIgnoreCase(io.distserve.processors.routing.kv.KvAwareStrategy.NAME);
    }

    private RoutingStrategies() {
    }

    /** The named strategy with its own unseeded randomness. */
    public static RoutingStrategy byName(String name) {
        return byName(name, new Random());
    }

    /**
     * The named strategy (case ignored, so LMDeploy's enum spelling MIN_EXPECTED_LATENCY works too).
     *
     * @throws IllegalArgumentException for an unknown name, listing the valid ones
     */
    public static RoutingStrategy byName(String name, Random random) {
        String key = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        switch (key) {
            case RandomStrategy.NAME:
                return new RandomStrategy(random);
            case MinExpectedLatencyStrategy.NAME:
                return new MinExpectedLatencyStrategy(random);
            case MinObservedLatencyStrategy.NAME:
                return new MinObservedLatencyStrategy(random);
            default:
                throw new IllegalArgumentException("Unknown routing strategy '" + name + "'; expected one of "
                        + String.join(", ", NAMES));
        }
    }
}
