package io.distserve.registry;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import com.fasterxml.jackson.databind.ser.std.ToStringSerializer;
import java.time.Instant;
import java.util.List;
import java.util.Objects;

/**
 * A consistent-enough snapshot of one node: what {@code GET /nodes/status} shows and what routing strategies
 * choose from. Counters are read one after another without a global lock, so under load they may be a request
 * apart; they are never torn.
 *
 * @param url                       the normalized base URL (the node's identity)
 * @param role                      its role
 * @param models                    the models it serves
 * @param inFlight                  requests sent to it and not yet ended
 * @param meanLatencyMs             mean wall time of its last completed requests (see the registry's window), in
 *                                  milliseconds; null when none has completed within the latency max age
 * @param completed                 requests that completed successfully since it was added
 * @param failures                  requests that failed since it was added
 * @param speed                     declared relative speed, null when not declared
 * @param health                    HEALTHY (routable) or UNHEALTHY
 * @param healthSince               when {@code health} last changed
 * @param consecutiveProbeFailures  failed health probes in a row
 * @param lastError                 the latest failed probe's message; null once a probe succeeds
 * @param lastRequestError          the latest failed request's message, null if none failed
 * @param source                    how the node came into the table: "api" ({@code /nodes/add}, the node-table
 *                                  file) or "consul" (discovered; not saved to the file)
 * @param stale                     requests to it have ended, but none within the registry's latency max age: what
 *                                  was known about its speed is forgotten and routing may measure it again
 */
@JsonPropertyOrder({"url", "role", "models", "in_flight", "mean_latency_ms", "completed", "failures", "speed",
        "health", "health_since", "consecutive_probe_failures", "last_error", "last_request_error", "source",
        "stale"})
public record NodeView(
        @JsonProperty("url") String url,
        @JsonProperty("role") NodeRole role,
        @JsonProperty("models") List<String> models,
        @JsonProperty("in_flight") int inFlight,
        @JsonProperty("mean_latency_ms") Double meanLatencyMs,
        @JsonProperty("completed") long completed,
        @JsonProperty("failures") long failures,
        @JsonProperty("speed") Double speed,
        @JsonProperty("health") HealthStatus health,
        @JsonProperty("health_since") @JsonSerialize(using = ToStringSerializer.class) Instant healthSince,
        @JsonProperty("consecutive_probe_failures") int consecutiveProbeFailures,
        @JsonProperty("last_error") String lastError,
        @JsonProperty("last_request_error") String lastRequestError,
        @JsonProperty("source") NodeSource source,
        @JsonProperty("stale") boolean stale) {

    public NodeView {
        source = source == null ? NodeSource.API : source;
        Objects.requireNonNull(url, "url");
        Objects.requireNonNull(role, "role");
        models = List.copyOf(models);
        Objects.requireNonNull(health, "health");
        Objects.requireNonNull(healthSince, "healthSince");
    }

    /** A view that is not stale (the form before latencies aged out). */
    public NodeView(String url, NodeRole role, List<String> models, int inFlight, Double meanLatencyMs,
                    long completed, long failures, Double speed, HealthStatus health, Instant healthSince,
                    int consecutiveProbeFailures, String lastError, String lastRequestError, NodeSource source) {
        this(url, role, models, inFlight, meanLatencyMs, completed, failures, speed, health, healthSince,
                consecutiveProbeFailures, lastError, lastRequestError, source, false);
    }

    /** A view of a node added through the API (the form before nodes had a source). */
    public NodeView(String url, NodeRole role, List<String> models, int inFlight, Double meanLatencyMs,
                    long completed, long failures, Double speed, HealthStatus health, Instant healthSince,
                    int consecutiveProbeFailures, String lastError, String lastRequestError) {
        this(url, role, models, inFlight, meanLatencyMs, completed, failures, speed, health, healthSince,
                consecutiveProbeFailures, lastError, lastRequestError, NodeSource.API);
    }

    /**
     * A healthy view with the given load, for tests and for callers that build candidates themselves.
     */
    public static NodeView of(String url, NodeRole role, Double speed, int inFlight, Double meanLatencyMs,
                              long completed, long failures) {
        return new NodeView(url, role, List.of(), inFlight, meanLatencyMs, completed, failures, speed,
                HealthStatus.HEALTHY, Instant.EPOCH, 0, null, null);
    }

    @JsonIgnore
    public boolean isHealthy() {
        return health == HealthStatus.HEALTHY;
    }

    /**
     * Whether a request to this node has ended (completed or failed) recently enough to count: the node has been
     * tried. A stale node has no history any more: it is measured again, like a new one.
     */
    @JsonIgnore
    public boolean hasHistory() {
        return (completed > 0 || failures > 0) && !stale;
    }
}
