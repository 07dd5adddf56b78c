package io.distserve.registry;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Probes every node in the registry, in rounds, and moves nodes in and out of the routing set
 * (see {@link HealthState} for the rules and {@link HealthCheckSettings} for the knobs).
 *
 * <p>A round probes all nodes concurrently on a pool of {@code maxConcurrentProbes} threads; each result is
 * applied as soon as its probe ends, so a hanging node delays nobody else. A probe still running
 * {@code probeTimeout} after it started counts as failed and is cancelled, and a probe that could not even
 * start (every probe thread stuck in a probe that ignores interruption) fails once the round's deadline passes,
 * so a round always ends. Probe timeouts use the real monotonic clock, since they bound real I/O; the injected
 * {@link TimeSource} dates health changes and decides removals.
 *
 * <p>Lifecycle: {@link #start()} runs a first round at once and then one round {@code interval} after the end of
 * the previous; {@link #close()} stops both threads. {@link #checkNow()} runs one round on the caller's thread
 * (rounds never overlap), for tests and for an operator's "check now".
 */
public final class HealthChecker implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(HealthChecker.class);

    private enum State { NEW, RUNNING, CLOSED }

    private final NodeRegistry registry;
    private final HealthProbe probe;
    private final HealthCheckSettings settings;
    private final TimeSource time;
    private final ScheduledExecutorService scheduler;
    private final ExecutorService probePool;
    private final ReentrantLock roundLock = new ReentrantLock();
    private final AtomicReference<State> state = new AtomicReference<>(State.NEW);

    public HealthChecker(NodeRegistry registry, HealthProbe probe, HealthCheckSettings settings, TimeSource time) {
        this.registry = Objects.requireNonNull(registry, "registry");
        this.probe = Objects.requireNonNull(probe, "probe");
        this.settings = Objects.requireNonNull(settings, "settings");
        this.time = Objects.requireNonNull(time, "time");
        ScheduledThreadPoolExecutor timer =
                new ScheduledThreadPoolExecutor(1, new NamedThreadFactory("distserve-health-checker"));
        timer.setRemoveOnCancelPolicy(true);
        this.scheduler = timer;
        this.probePool = new ThreadPoolExecutor(settings.maxConcurrentProbes(), settings.maxConcurrentProbes(),
                0L, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
                new NamedThreadFactory("distserve-health-probe"));
    }

    /** Starts the periodic rounds, the first one at once. */
    public void start() {
        if (!state.compareAndSet(State.NEW, State.RUNNING)) {
            throw new IllegalStateException("The health checker is " + state.get() + "; it can be started once");
        }
        scheduler.scheduleWithFixedDelay(this::scheduledRound, 0, settings.interval().toNanos(),
                TimeUnit.NANOSECONDS);
        LOG.info("Health checks every {} ms (timeout {} ms, unhealthy after {} failure(s), removal {})",
                settings.interval().toMillis(), settings.probeTimeout().toMillis(), settings.unhealthyAfter(),
                settings.removeAfterUnhealthy() == null ? "never"
                        : "after " + settings.removeAfterUnhealthy() + " unhealthy");
    }

    private void scheduledRound() {
        try {
            checkNow();
        } catch (RuntimeException e) {
            // An exception escaping a scheduled task would silently cancel every later round.
            LOG.error("Health check round failed; the next round runs as scheduled", e);
        }
    }

    /**
     * Probes every node once and applies the results, then removes nodes unhealthy for longer than
     * {@code removeAfterUnhealthy}. Returns when every probe has ended or timed out. If the calling thread is
     * interrupted, the round's unfinished probes are cancelled without a verdict and the interrupt is kept.
     */
    public void checkNow() {
        if (state.get() == State.CLOSED) {
            throw new IllegalStateException("The health checker is closed");
        }
        roundLock.lock();
        try {
            runRound();
            removeLongUnhealthy();
        } finally {
            roundLock.unlock();
        }
    }

    private void runRound() {
        List<NodeView> nodes = registry.nodes();
        if (nodes.isEmpty()) {
            return;
        }
        long timeoutNanos = settings.probeTimeout().toNanos();
        // Waves of probes the pool needs if every probe took the full timeout, plus one for scheduling slack.
        long waves = (nodes.size() + settings.maxConcurrentProbes() - 1) / settings.maxConcurrentProbes() + 1;
        long roundDeadline = System.nanoTime() + waves * timeoutNanos;
        List<ProbeTask> tasks = new ArrayList<>(nodes.size());
        for (NodeView node : nodes) {
            ProbeTask task = new ProbeTask(node.url());
            try {
                task.future = probePool.submit(task);
            } catch (RejectedExecutionException e) {
                // close() ran during this round: the remaining nodes get no verdict, as on interruption.
                tasks.forEach(t -> t.future.cancel(true));
                return;
            }
            tasks.add(task);
        }
        try {
            for (ProbeTask task : tasks) {
                awaitOrTimeOut(task, timeoutNanos, roundDeadline);
            }
        } catch (InterruptedException e) {
            for (ProbeTask task : tasks) {
                task.future.cancel(true);
            }
            Thread.currentThread().interrupt();
        }
    }

    private static final long NOT_STARTED_POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(10);

    private void awaitOrTimeOut(ProbeTask task, long timeoutNanos, long roundDeadline) throws InterruptedException {
        while (!task.future.isDone()) {
            long now = System.nanoTime();
            long started = task.startedNanos;
            long deadline = started == 0 ? roundDeadline : started + timeoutNanos;
            long remaining = deadline - now;
            if (remaining <= 0) {
                task.report(ProbeResult.failed(started == 0
                        ? "probe could not start: all " + settings.maxConcurrentProbes() + " probe threads busy"
                        : "no answer within " + settings.probeTimeout().toMillis() + " ms"));
                task.future.cancel(true);
                return;
            }
            // A probe not started yet gets its own deadline once it starts: look again soon rather than waiting
            // until the round's deadline (that made a hanging probe's timeout waves x probeTimeout)
            long wait = started == 0 ? Math.min(remaining, NOT_STARTED_POLL_NANOS) : remaining;
            try {
                task.future.get(wait, TimeUnit.NANOSECONDS);
            } catch (TimeoutException | ExecutionException | CancellationException e) {
                // Loop: the deadline check above decides; ProbeTask never throws.
            }
        }
    }

    private void apply(String url, ProbeResult result) {
        Instant now = time.now();
        AtomicReference<HealthState> before = new AtomicReference<>();
        registry.updateHealth(url, h -> {
            before.set(h);
            return result.healthy() ? h.afterSuccess(now) : h.afterFailure(result.error(), now,
                    settings.unhealthyAfter());
        }).ifPresent(after -> logTransition(url, before.get(), after));
    }

    private void logTransition(String url, HealthState before, HealthState after) {
        if (before.isHealthy() && !after.isHealthy()) {
            LOG.warn("Node {} is UNHEALTHY after {} failed probe(s): {}; it leaves the routing set", url,
                    after.consecutiveFailures(), after.lastError());
        } else if (!before.isHealthy() && after.isHealthy()) {
            LOG.info("Node {} is HEALTHY again after being down since {}; re-admitted", url, before.since());
        } else if (after.lastError() != null && after.isHealthy()) {
            LOG.info("Node {} failed a probe ({} of {} before it is taken out): {}", url,
                    after.consecutiveFailures(), settings.unhealthyAfter(), after.lastError());
        }
    }

    private void removeLongUnhealthy() {
        Duration limit = settings.removeAfterUnhealthy();
        if (limit == null) {
            return;
        }
        Instant cutoff = time.now().minus(limit);
        for (NodeView node : registry.nodes()) {
            if (!node.isHealthy() && !node.healthSince().isAfter(cutoff)
                    && registry.removeIfUnhealthySince(node.url(), cutoff)) {
                LOG.warn("Removed node {}: unhealthy since {} (longer than {}); last error: {}", node.url(),
                        node.healthSince(), limit, node.lastError());
            }
        }
    }

    /** Stops the rounds and the probe threads; probes in progress are interrupted. Idempotent. */
    @Override
    public void close() {
        if (state.getAndSet(State.CLOSED) == State.CLOSED) {
            return;
        }
        scheduler.shutdownNow();
        probePool.shutdownNow();
        try {
            long waitMillis = settings.probeTimeout().toMillis() + 1000;
            if (!scheduler.awaitTermination(waitMillis, TimeUnit.MILLISECONDS)
                    || !probePool.awaitTermination(waitMillis, TimeUnit.MILLISECONDS)) {
                LOG.warn("Health check threads did not stop within {} ms (a probe ignores interruption)",
                        waitMillis);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** One node's probe in one round; its result is applied once, by whoever ends it first. */
    private final class ProbeTask implements Runnable {
        private final String url;
        private final AtomicBoolean reported = new AtomicBoolean();
        private volatile long startedNanos;
        private volatile Future<?> future;

        ProbeTask(String url) {
            this.url = url;
        }

        @Override
        public void run() {
            // Never 0: 0 means "not started" to the waiter.
            startedNanos = System.nanoTime() | 1L;
            ProbeResult result;
            try {
                result = probe.probe(url);
                if (result == null) {
                    result = ProbeResult.failed("the probe returned no result");
                }
            } catch (InterruptedException e) {
                // Cancelled by the waiter, which has already reported the timeout.
                Thread.currentThread().interrupt();
                return;
            } catch (Exception e) {
                result = ProbeResult.failed(e.getClass().getSimpleName()
                        + (e.getMessage() == null ? "" : ": " + e.getMessage()));
            }
            report(result);
        }

        void report(ProbeResult result) {
            if (reported.compareAndSet(false, true)) {
                apply(url, result);
            }
        }
    }
}
