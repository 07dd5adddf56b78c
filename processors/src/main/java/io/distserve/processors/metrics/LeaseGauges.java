package io.distserve.processors.metrics;

import io.distserve.processors.disagg.PrefillLeases;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;

/** Prefill leases in /metrics: held now, blocks they hold, and how they ended. */
public final class LeaseGauges {

    private LeaseGauges() {
    }

    public static void register(MeterRegistry registry, PrefillLeases leases) {
        Gauge.builder("distserve.prefill.leases", leases, PrefillLeases::active)
                .description("KV leases held for decode engines").register(registry);
        Gauge.builder("distserve.prefill.leased_blocks", leases, PrefillLeases::blocksHeld)
                .description("KV blocks held under leases").register(registry);
        FunctionCounter.builder("distserve.prefill.leases.freed", leases, PrefillLeases::freedCount)
                .description("Leases ended by free_cache").register(registry);
        FunctionCounter.builder("distserve.prefill.leases.expired", leases, PrefillLeases::expiredCount)
                .description("Leases ended by expiry").register(registry);
    }
}
