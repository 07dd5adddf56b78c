package io.distserve.registry;

/**
 * Asks one node whether it is healthy. The {@link HealthChecker} calls it from a bounded pool of threads and
 * cancels (interrupts) a call that outlives the probe timeout, so an implementation should return promptly when
 * interrupted; an exception it throws counts as a failed probe.
 */
@FunctionalInterface
public interface HealthProbe {

    /** Probes the node whose normalized base URL is {@code nodeUrl}. */
    ProbeResult probe(String nodeUrl) throws Exception;
}
