package io.distserve.processors.metrics;

import io.distserve.engine.EngineStats;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.function.Supplier;
import java.util.function.ToDoubleFunction;

/** Engine state as Prometheus gauges, read from {@link EngineStats} at scrape time. */
public final class EngineGauges {

    private EngineGauges() {
    }

    public static void register(MeterRegistry registry, Supplier<EngineStats> stats) {
        gauge(registry, "distserve.sequences.waiting", "Sequences waiting to be scheduled", stats, EngineStats::waiting);
        gauge(registry, "distserve.sequences.running", "Sequences being generated", stats, EngineStats::running);
        gauge(registry, "distserve.kv.blocks.used", "KV cache blocks in use", stats, EngineStats::blocksUsed);
        gauge(registry, "distserve.kv.blocks.free", "KV cache blocks free", stats, EngineStats::blocksFree);
        gauge(registry, "distserve.kv.blocks.total", "KV cache blocks in all", stats, EngineStats::blocksTotal);
        FunctionCounter.builder("distserve.engine.preemptions", stats, s -> s.get().preemptions())
                .description("Sequences preempted for lack of KV blocks").register(registry);
        FunctionCounter.builder("distserve.engine.steps", stats, s -> s.get().steps())
                .description("Engine forward steps").register(registry);
    }

    private static void gauge(MeterRegistry registry, String name, String description, Supplier<EngineStats> stats,
                              ToDoubleFunction<EngineStats> value) {
        Gauge.builder(name, stats, s -> value.applyAsDouble(s.get())).description(description).register(registry);
    }
}
