package io.distserve.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class HealthCheckerTest {

    private static final String A = "http://10.0.0.1:1";
    private static final String B = "http://10.0.0.2:1";
    private static final String C = "http://10.0.0.3:1";

    private final ManualTime time = new ManualTime();
    private final NodeRegistry registry = new NodeRegistry(NodeTableStore.none(), time);
    /** What the fake probe answers per node; absent means healthy. */
    private final Map<String, ProbeResult> answers = new ConcurrentHashMap<>();
    private final Map<String, AtomicInteger> probes = new ConcurrentHashMap<>();
    private final CountDownLatch never = new CountDownLatch(1);
    private HealthChecker checker;

    private final HealthProbe fakeProbe = url -> {
        probes.computeIfAbsent(url, u -> new AtomicInteger()).incrementAndGet();
        if (url.equals(C) && answers.containsKey("hang")) {
            never.await();
        }
        if (answers.containsKey(url + "#throw")) {
            throw new IllegalStateException("probe bug");
        }
        return answers.getOrDefault(url, ProbeResult.ok());
    };

    private HealthChecker checker(HealthCheckSettings settings) {
        checker = new HealthChecker(registry, fakeProbe, settings, time);
        return checker;
    }

    @AfterEach
    void close() {
        never.countDown();
        if (checker != null) {
            checker.close();
        }
    }

    private void register(String... urls) {
        for (String url : urls) {
            registry.register(url, new NodeStatus(NodeRole.Prefill, List.of("m"), null));
        }
    }

    private List<String> routable() {
        return registry.candidates("m", NodeRole.Prefill).stream().map(NodeView::url).toList();
    }

    @Test
    void takesANodeOutAfterTheThresholdAndBackOnTheFirstSuccess() {
        register(A, B);
        HealthChecker hc = checker(HealthCheckSettings.DEFAULTS.withUnhealthyAfter(2));
        answers.put(A, ProbeResult.failed("GET /health answered HTTP 503"));

        hc.checkNow();
        assertThat(routable()).containsExactly(A, B);
        assertThat(registry.node(A).orElseThrow().lastError()).isEqualTo("GET /health answered HTTP 503");

        time.advance(Duration.ofSeconds(5));
        hc.checkNow();
        assertThat(routable()).containsExactly(B);
        NodeView a = registry.node(A).orElseThrow();
        assertThat(a.health()).isEqualTo(HealthStatus.UNHEALTHY);
        assertThat(a.healthSince()).isEqualTo(time.now());
        assertThat(registry.nodes()).hasSize(2);

        answers.remove(A);
        hc.checkNow();
        assertThat(routable()).containsExactly(A, B);
        assertThat(registry.node(A).orElseThrow().lastError()).isNull();
    }

    @Test
    void aThrowingProbeIsAFailedProbe() {
        register(A);
        HealthChecker hc = checker(HealthCheckSettings.DEFAULTS.withUnhealthyAfter(1));
        answers.put(A + "#throw", ProbeResult.ok());
        hc.checkNow();
        assertThat(registry.node(A).orElseThrow().lastError()).isEqualTo("IllegalStateException: probe bug");
        assertThat(routable()).isEmpty();
    }

    @Test
    void aHangingNodeTimesOutWithoutDelayingTheOthers() throws Exception {
        register(C, A, B);
        answers.put("hang", ProbeResult.ok());
        answers.put(A, ProbeResult.failed("refused"));
        HealthChecker hc = checker(HealthCheckSettings.DEFAULTS.withUnhealthyAfter(1)
                .withProbeTimeout(Duration.ofMillis(1500)).withMaxConcurrentProbes(2));
        long start = System.nanoTime();
        CompletableFuture<Void> round = CompletableFuture.runAsync(hc::checkNow);
        // C (first in line) hangs on one probe thread; A and B are probed on the other and applied at once.
        await().atMost(Duration.ofMillis(1000)).until(() -> !registry.node(A).orElseThrow().isHealthy());
        assertThat(round).isNotDone();
        assertThat(routable()).containsExactly(C, B);
        round.get(5, TimeUnit.SECONDS);
        long elapsedMs = (System.nanoTime() - start) / 1_000_000;
        assertThat(elapsedMs).isBetween(1400L, 3_000L);
        assertThat(routable()).containsExactly(B);
        assertThat(registry.node(C).orElseThrow().lastError()).isEqualTo("no answer within 1500 ms");
        assertThat(registry.node(A).orElseThrow().lastError()).isEqualTo("refused");
    }

    @Test
    void unhealthyNodesStayInTheTableUnlessARemovalDelayIsSet() {
        register(A, B);
        answers.put(A, ProbeResult.failed("refused"));
        HealthChecker keeping = checker(HealthCheckSettings.DEFAULTS.withUnhealthyAfter(1));
        keeping.checkNow();
        time.advance(Duration.ofDays(30));
        keeping.checkNow();
        assertThat(registry.nodes()).hasSize(2);
        keeping.close();

        HealthChecker removing = checker(HealthCheckSettings.DEFAULTS.withUnhealthyAfter(1)
                .withRemoveAfterUnhealthy(Duration.ofMinutes(10)));
        registry.register(A, new NodeStatus(NodeRole.Prefill, List.of("m"), null));
        removing.checkNow();
        time.advance(Duration.ofMinutes(9));
        removing.checkNow();
        assertThat(registry.nodes()).hasSize(2);
        time.advance(Duration.ofMinutes(1));
        removing.checkNow();
        assertThat(registry.nodes()).extracting(NodeView::url).containsExactly(B);
    }

    @Test
    void startRunsAFirstRoundAtOnceThenPeriodicallyAndCloseStopsItsThreads() {
        register(A);
        HealthChecker hc = checker(HealthCheckSettings.DEFAULTS.withInterval(Duration.ofMillis(50)));
        hc.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> probes.containsKey(A) && probes.get(A).get() >= 3);
        assertThat(Thread.getAllStackTraces().keySet()).extracting(Thread::getName)
                .contains("distserve-health-checker-1", "distserve-health-probe-1");
        hc.close();
        int count = probes.get(A).get();
        await().during(Duration.ofMillis(200)).atMost(Duration.ofSeconds(2))
                .until(() -> probes.get(A).get() == count);
        await().atMost(Duration.ofSeconds(2)).until(() -> Thread.getAllStackTraces().keySet().stream()
                .noneMatch(t -> t.isAlive() && t.getName().startsWith("distserve-health-")));
        hc.close();
    }
}
