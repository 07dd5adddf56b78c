package io.distserve.registry;

import java.time.Duration;
import java.util.Objects;

/**
 * How a node's observed latency is kept: the last {@code window} completed requests, each forgotten once older than
 * {@code maxAge}, measured on {@code time}'s monotonic clock.
 */
record LatencySettings(int window, Duration maxAge, TimeSource time) {

    LatencySettings {
        if (window < 1) {
            throw new IllegalArgumentException("latencyWindow must be at least 1, got " + window);
        }
        Objects.requireNonNull(maxAge, "maxAge");
        if (maxAge.isNegative() || maxAge.isZero()) {
            throw new IllegalArgumentException("latency max age must be positive, got " + maxAge);
        }
        Objects.requireNonNull(time, "time");
    }
}
