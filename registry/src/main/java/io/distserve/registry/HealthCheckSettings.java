package io.distserve.registry;

import java.time.Duration;
import java.util.Objects;

/**
 * How the {@link HealthChecker} works.
 *
 * @param interval               pause between the end of one round of probes and the start of the next
 * @param probeTimeout           the longest one probe may run before it counts as failed and is cancelled
 * @param unhealthyAfter         consecutive failed probes that take a node out of the routing set; one success
 *                               brings it back
 * @param removeAfterUnhealthy   how long a node may stay unhealthy before it is removed from the table (and
 *                               the file); null means never: only {@code POST /nodes/remove} removes a node
 * @param maxConcurrentProbes    the probe pool's size: at most this many nodes are probed at once
 */
public record HealthCheckSettings(Duration interval, Duration probeTimeout, int unhealthyAfter,
                                  Duration removeAfterUnhealthy, int maxConcurrentProbes) {

    /** Probe every 5 s; 2 s per probe; out after 2 failures in a row (one lost packet is not an outage). */
    public static final HealthCheckSettings DEFAULTS =
            new HealthCheckSettings(Duration.ofSeconds(5), Duration.ofSeconds(2), 2, null, 8);

    public HealthCheckSettings {
        requirePositive(interval, "interval");
        requirePositive(probeTimeout, "probeTimeout");
        if (unhealthyAfter < 1) {
            throw new IllegalArgumentException("unhealthyAfter must be at least 1, got " + unhealthyAfter);
        }
        if (removeAfterUnhealthy != null) {
            requirePositive(removeAfterUnhealthy, "removeAfterUnhealthy");
        }
        if (maxConcurrentProbes < 1) {
            throw new IllegalArgumentException("maxConcurrentProbes must be at least 1, got " + maxConcurrentProbes);
        }
    }

    private static void requirePositive(Duration d, String name) {
        Objects.requireNonNull(d, name);
        if (d.isZero() || d.isNegative()) {
            throw new IllegalArgumentException(name + " must be positive, got " + d);
        }
    }

    public HealthCheckSettings withInterval(Duration value) {
        return new HealthCheckSettings(value, probeTimeout, unhealthyAfter, removeAfterUnhealthy,
                maxConcurrentProbes);
    }

    public HealthCheckSettings withProbeTimeout(Duration value) {
        return new HealthCheckSettings(interval, value, unhealthyAfter, removeAfterUnhealthy, maxConcurrentProbes);
    }

    public HealthCheckSettings withUnhealthyAfter(int value) {
        return new HealthCheckSettings(interval, probeTimeout, value, removeAfterUnhealthy, maxConcurrentProbes);
    }

    /** @param value null for never */
    public HealthCheckSettings withRemoveAfterUnhealthy(Duration value) {
        return new HealthCheckSettings(interval, probeTimeout, unhealthyAfter, value, maxConcurrentProbes);
    }

    public HealthCheckSettings withMaxConcurrentProbes(int value) {
        return new HealthCheckSettings(interval, probeTimeout, unhealthyAfter, removeAfterUnhealthy, value);
    }
}
