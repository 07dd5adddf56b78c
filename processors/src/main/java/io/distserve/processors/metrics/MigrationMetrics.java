package io.distserve.processors.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * KV migrations as a decode engine pulls them, by transport: Prometheus {@code kv_migration_bytes_total},
 * {@code kv_migration_seconds} (a histogram of pull time: from the read to the last byte in the local pool) and
 * {@code kv_migration_failures_total}, and {@code kv_migration_cached_blocks_total} (blocks the decode engine's
 * prefix cache already held, so not pulled).
 */
public final class MigrationMetrics {

    private record Meters(Counter bytes, Timer seconds, Counter failures, Counter cachedBlocks) {
    }

    private final MeterRegistry registry;
    private final Map<String, Meters> byTransport = new ConcurrentHashMap<>();

    public MigrationMetrics(MeterRegistry registry) {
        this.registry = registry;
    }

    private Meters meters(String transport) {
        return byTransport.computeIfAbsent(transport, t -> new Meters(
                Counter.builder("kv.migration.bytes").description("KV cache bytes pulled from prefill engines")
                        .baseUnit("bytes").tag("transport", t).register(registry),
                Timer.builder("kv.migration").description("Time to pull one request's KV cache")
                        .tag("transport", t).publishPercentileHistogram()
                        .minimumExpectedValue(Duration.ofNanos(10_000)).maximumExpectedValue(Duration.ofSeconds(60))
                        .register(registry),
                Counter.builder("kv.migration.failures").description("KV migrations that failed")
                        .tag("transport", t).register(registry),
                Counter.builder("kv.migration.cached.blocks")
                        .description("Blocks of migrated prompts not pulled: this engine's prefix cache had them")
                        .tag("transport", t).register(registry)));
    }

    /** Registers the meters of a transport up front, so that they show (at 0) before the first migration. */
    public void offer(String transport) {
        meters(transport);
    }

    public void migrated(String transport, long bytes, long nanos, int cachedBlocks) {
        Meters m = meters(transport);
        m.bytes().increment(bytes);
        m.seconds().record(Duration.ofNanos(nanos));
        m.cachedBlocks().increment(cachedBlocks);
    }

    public void failed(String transport) {
        meters(transport).failures().increment();
    }
}
