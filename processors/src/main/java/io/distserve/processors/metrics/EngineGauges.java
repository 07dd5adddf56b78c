package io.distserve.processors.metrics;

import io.distserve.engine.EngineStats;
import io.distserve.processors.engine.EngineNode;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.function.ToDoubleFunction;

/**
 * Engine state as Prometheus gauges, read from {@link EngineStats} at scrape time. Micrometer holds the state object
 * weakly, so it is the node itself (which the application keeps), not a throwaway supplier.
 */
public final class EngineGauges {

    private EngineGauges() {
    }

    public static void register(MeterRegistry registry, EngineNode node) {
        gauge(registry, "distserve.sequences.waiting", "Sequences waiting to be scheduled", node, EngineStats::waiting);
        gauge(registry, "distserve.sequences.running", "Sequences being generated", node, EngineStats::running);
        gauge(registry, "distserve.kv.blocks.used", "KV cache blocks in use", node, EngineStats::blocksUsed);
        gauge(registry, "distserve.kv.blocks.free", "KV cache blocks free", node, EngineStats::blocksFree);
        gauge(registry, "distserve.kv.blocks.total", "KV cache blocks in all", node, EngineStats::blocksTotal);
        FunctionCounter.builder("distserve.engine.preemptions", node, n -> n.stats().preemptions())
                .description("Sequences preempted for lack of KV blocks").register(registry);
        FunctionCounter.builder("distserve.engine.steps", node, n -> n.stats().steps())
                .description("Engine forward steps").register(registry);
        FunctionCounter.builder("distserve.engine.requests.aborted", node, n -> n.stats().requestsAborted())
                .description("Requests aborted (the client left, or an operator aborted them)").register(registry);
        // Prefix cache: hit rate = hit tokens / queried tokens (rate() both in PromQL for a recent rate).
        FunctionCounter.builder("distserve.prefix.cache.queried.tokens", node, n -> n.stats().prefixQueriedTokens())
                .description("Prompt tokens looked up in the prefix cache").register(registry);
        FunctionCounter.builder("distserve.prefix.cache.hit.tokens", node, n -> n.stats().prefixHitTokens())
                .description("Prompt tokens whose KV the prefix cache held (not computed)").register(registry);
        FunctionCounter.builder("distserve.prefix.cache.evictions", node, n -> n.stats().evictions())
                .description("Cached KV blocks reused for other contents").register(registry);
        gauge(registry, "distserve.prefix.cache.blocks", "KV blocks whose contents the prefix cache holds", node,
                EngineStats::cachedBlocks);
    }

    private static void gauge(MeterRegistry registry, String name, String description, EngineNode node,
                              ToDoubleFunction<EngineStats> value) {
        Gauge.builder(name, node, n -> value.applyAsDouble(n.stats())).description(description).register(registry);
    }
}
