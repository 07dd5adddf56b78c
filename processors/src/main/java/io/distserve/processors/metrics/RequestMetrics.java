package io.distserve.processors.metrics;

import io.distserve.engine.FinishEvent;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Request-level metrics in the node's Prometheus registry: requests by route and status, in-flight requests,
 * prompt and generated tokens, time to first token and time per output token.
 */
public final class RequestMetrics {

    /** The status counted for a request whose client disconnected before the answer (nginx's 499). */
    public static final int CLIENT_CLOSED = 499;

    private final MeterRegistry registry;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final Map<String, Map<Integer, Counter>> requests = new ConcurrentHashMap<>();
    private final Counter promptTokens;
    private final Counter generatedTokens;
    private final Timer timeToFirstToken;
    private final Timer timePerOutputToken;
    private final DistributionSummary completionTokens;

    public RequestMetrics(MeterRegistry registry) {
        this.registry = registry;
        registry.gauge("distserve.requests.in_flight", inFlight);
        promptTokens = Counter.builder("distserve.prompt.tokens").description("Prompt tokens processed")
                .register(registry);
        generatedTokens = Counter.builder("distserve.generation.tokens").description("Tokens generated")
                .register(registry);
        timeToFirstToken = Timer.builder("distserve.time_to_first_token")
                .description("Time from arrival to the first generated token")
                .publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofSeconds(60))
                .register(registry);
        timePerOutputToken = Timer.builder("distserve.time_per_output_token")
                .description("Time between consecutive generated tokens")
                .publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofSeconds(10))
                .register(registry);
        completionTokens = DistributionSummary.builder("distserve.request.completion_tokens")
                .description("Completion tokens per request").register(registry);
    }

    public MeterRegistry registry() {
        return registry;
    }

    public void requestStarted() {
        inFlight.incrementAndGet();
    }

    public void requestFinished() {
        inFlight.decrementAndGet();
    }

    public int inFlight() {
        return inFlight.get();
    }

    /** Counts one answered request by route and HTTP status. */
    public void requestEnded(String route, int status) {
        String name = route == null ? "unknown" : route;
        // a registry lookup builds and sorts the tags on every call: the counter is kept per (route, status)
        requests.computeIfAbsent(name, r -> new ConcurrentHashMap<>())
                .computeIfAbsent(status, st -> registry.counter("distserve.requests", "route", name,
                        "status", Integer.toString(st)))
                .increment();
    }

    public void generationFinished(FinishEvent finish) {
        promptTokens.increment(finish.promptTokens());
        generatedTokens.increment(finish.completionTokens());
        completionTokens.record(finish.completionTokens());
        if (finish.completionTokens() > 0 && finish.timing() != null) {
            timeToFirstToken.record(Duration.ofNanos(finish.timing().timeToFirstTokenNanos()));
            for (long gap : finish.timing().interTokenNanos()) {
                timePerOutputToken.record(Duration.ofNanos(gap));
            }
        }
    }
}
