package io.distserve.registry;

import java.time.Instant;
import java.util.Objects;

/**
 * A node's health and the transitions between states, kept pure so the rules can be tested without threads.
 *
 * <p>Rules: a node is HEALTHY when registered; it becomes UNHEALTHY after {@code threshold} consecutive failed
 * probes and HEALTHY again on the first successful one. {@code lastError} is the most recent failed probe's
 * message and is cleared by a success, so "HEALTHY with a last error" means "failed below the threshold".
 *
 * @param status              routable or not
 * @param since               when {@code status} last changed (or the node was registered)
 * @param consecutiveFailures failed probes in a row; 0 after a success
 * @param lastError           the latest failed probe's message, null after a success
 */
public record HealthState(HealthStatus status, Instant since, int consecutiveFailures, String lastError) {

    public HealthState {
        Objects.requireNonNull(status, "status");
        Objects.requireNonNull(since, "since");
        if (consecutiveFailures < 0) {
            throw new IllegalArgumentException("consecutiveFailures must not be negative");
        }
    }

    /** The state of a node that has just registered: registering is a sign of life. */
    public static HealthState healthy(Instant now) {
        return new HealthState(HealthStatus.HEALTHY, now, 0, null);
    }

    public boolean isHealthy() {
        return status == HealthStatus.HEALTHY;
    }

    /** After a successful probe: healthy at once (re-admitted), failure streak reset. */
    public HealthState afterSuccess(Instant now) {
        if (isHealthy() && consecutiveFailures == 0 && lastError == null) {
            return this;
        }
        return new HealthState(HealthStatus.HEALTHY, isHealthy() ? since : now, 0, null);
    }

    /**
     * After a failed probe: unhealthy once {@code threshold} probes in a row have failed (an unhealthy node stays
     * unhealthy, keeping its original "since").
     */
    public HealthState afterFailure(String error, Instant now, int threshold) {
        if (threshold < 1) {
            throw new IllegalArgumentException("threshold must be at least 1, got " + threshold);
        }
        int failures = consecutiveFailures == Integer.MAX_VALUE ? consecutiveFailures : consecutiveFailures + 1;
        boolean down = !isHealthy() || failures >= threshold;
        HealthStatus next = down ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY;
        return new HealthState(next, next == status ? since : now, failures, error);
    }
}
