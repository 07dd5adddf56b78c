package io.distserve.registry;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.UnaryOperator;

/**
 * One table entry with its live counters. The status and health are replaced atomically; the counters are
 * atomics, so HTTP threads never take a lock on the request path (the latency window has its own short one).
 */
final class TrackedNode {

    private final String url;
    private volatile NodeStatus status;
    private final AtomicReference<HealthState> health;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicLong completed = new AtomicLong();
    private final AtomicLong failures = new AtomicLong();
    private final AtomicReference<String> lastRequestError = new AtomicReference<>();
    private final LatencyWindow latencies;
    private final TimeSource time;
    private final long maxAgeNanos;
    /** When a request to it last ended (completed or failed), monotonic; {@code Long.MIN_VALUE}: never. */
    private volatile long lastEndedNanos = Long.MIN_VALUE;
    private volatile NodeSource source;

    TrackedNode(String url, NodeStatus status, HealthState health, LatencySettings latency) {
        this(url, status, health, latency, NodeSource.API);
    }

    TrackedNode(String url, NodeStatus status, HealthState health, LatencySettings latency, NodeSource source) {
        this.url = url;
        this.source = source;
        this.status = status;
        this.health = new AtomicReference<>(health);
        this.time = latency.time();
        this.maxAgeNanos = latency.maxAge().toNanos();
        this.latencies = new LatencyWindow(latency.window(), maxAgeNanos);
    }

    String url() {
        return url;
    }

    NodeStatus status() {
        return status;
    }

    void status(NodeStatus newStatus) {
        this.status = newStatus;
    }

    NodeSource source() {
        return source;
    }

    void source(NodeSource newSource) {
        this.source = newSource;
    }

    HealthState health() {
        return health.get();
    }

    HealthState updateHealth(UnaryOperator<HealthState> transition) {
        return health.updateAndGet(transition);
    }

    void started() {
        inFlight.incrementAndGet();
    }

    void completed(long latencyNanos, long endNanos) {
        latencies.record(latencyNanos, endNanos);
        lastEndedNanos = endNanos;
        completed.incrementAndGet();
        inFlight.decrementAndGet();
    }

    void failed(String error, long endNanos) {
        lastEndedNanos = endNanos;
        lastRequestError.set(error);
        failures.incrementAndGet();
        inFlight.decrementAndGet();
    }

    void abandoned() {
        inFlight.decrementAndGet();
    }

    NodeView view() {
        NodeStatus s = status;
        HealthState h = health.get();
        long now = time.nanoTime();
        long ended = lastEndedNanos;
        // stale: requests ended here, but none within the max age; what we knew about its speed is forgotten
        boolean stale = ended != Long.MIN_VALUE && now - ended > maxAgeNanos;
        return new NodeView(url, s.role(), s.models(), inFlight.get(), latencies.meanMillis(now), completed.get(),
                failures.get(), s.speed(), h.status(), h.since(), h.consecutiveFailures(), h.lastError(),
                lastRequestError.get(), source, stale);
    }
}
