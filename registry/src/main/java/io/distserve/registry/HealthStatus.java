package io.distserve.registry;

/** Whether a node is in the routing set. */
public enum HealthStatus {
    /** Routable: probes succeed (or have failed fewer times in a row than the threshold). */
    HEALTHY,
    /** Out of the routing set but kept in the table, and probed until it answers again. */
    UNHEALTHY
}
