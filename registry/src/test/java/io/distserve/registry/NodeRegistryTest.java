package io.distserve.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class NodeRegistryTest {

    private static final String P1 = "http://10.0.0.1:23333";
    private static final String P2 = "http://10.0.0.2:23333";
    private static final String D1 = "http://10.0.0.3:23334";

    private final ManualTime time = new ManualTime();
    private final NodeRegistry registry = new NodeRegistry(NodeTableStore.none(), time);

    private static NodeStatus prefill(String... models) {
        return new NodeStatus(NodeRole.Prefill, List.of(models), null);
    }

    @Test
    void addsListsInOrderAndRemoves() {
        registry.register(P1, prefill("m"));
        registry.register(D1, new NodeStatus(NodeRole.Decode, List.of("m"), 2.0));
        registry.register(P2, prefill("m"));
        assertThat(registry.nodes()).extracting(NodeView::url).containsExactly(P1, D1, P2);

        assertThat(registry.remove(D1 + "/")).isTrue();
        assertThat(registry.remove(D1)).isFalse();
        assertThat(registry.nodes()).extracting(NodeView::url).containsExactly(P1, P2);
    }

    @Test
    void theSameUrlInAnotherSpellingUpdatesInsteadOfDuplicating() {
        registry.register(P1, prefill("a"));
        NodeView updated = registry.register("HTTP://10.0.0.1:23333/", new NodeStatus(NodeRole.Decode,
                List.of("b"), 3.0));
        assertThat(registry.size()).isEqualTo(1);
        assertThat(updated.url()).isEqualTo(P1);
        assertThat(updated.role()).isEqualTo(NodeRole.Decode);
        assertThat(updated.models()).containsExactly("b");
        assertThat(updated.speed()).isEqualTo(3.0);
    }

    @Test
    void anUpdateKeepsCountersAndInFlightRequests() {
        registry.register(P1, prefill("a"));
        NodeLease lease = registry.acquire(P1).orElseThrow();
        registry.register(P1, prefill("a", "b"));
        assertThat(registry.node(P1).orElseThrow().inFlight()).isEqualTo(1);
        lease.complete();
        NodeView view = registry.node(P1).orElseThrow();
        assertThat(view.inFlight()).isZero();
        assertThat(view.completed()).isEqualTo(1);
    }

    @Test
    void invalidUrlsAreRefusedEverywhere() {
        assertThatThrownBy(() -> registry.register("localhost", prefill()))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> registry.remove("ftp://x:1")).isInstanceOf(IllegalArgumentException.class);
        assertThat(registry.size()).isZero();
    }

    @Test
    void candidatesAreHealthyNodesOfTheRoleServingTheModel() {
        registry.register(P1, prefill("qwen"));
        registry.register(P2, prefill("llama"));
        registry.register(D1, new NodeStatus(NodeRole.Decode, List.of("qwen"), null));
        registry.register("http://10.0.0.9:1", new NodeStatus(NodeRole.Hybrid, List.of("qwen"), null));

        assertThat(registry.candidates("qwen", NodeRole.Prefill)).extracting(NodeView::url).containsExactly(P1);
        assertThat(registry.candidates("qwen", NodeRole.Decode)).extracting(NodeView::url).containsExactly(D1);
        assertThat(registry.candidates(null, NodeRole.Prefill)).extracting(NodeView::url).containsExactly(P1, P2);
        assertThat(registry.candidates("", NodeRole.Prefill)).hasSize(2);
        assertThat(registry.candidates("mistral", NodeRole.Prefill)).isEmpty();

        registry.updateHealth(P1, h -> h.afterFailure("down", time.now(), 1));
        assertThat(registry.candidates("qwen", NodeRole.Prefill)).isEmpty();
        assertThat(registry.nodes()).hasSize(4);
        assertThat(registry.servedModels()).containsExactly("llama", "qwen");
    }

    @Test
    void aNodeThatRegistersAgainIsReadmitted() {
        registry.register(P1, prefill("m"));
        registry.updateHealth(P1, h -> h.afterFailure("refused", time.now(), 1));
        assertThat(registry.candidates("m", NodeRole.Prefill)).isEmpty();
        registry.register(P1, prefill("m"));
        assertThat(registry.candidates("m", NodeRole.Prefill)).hasSize(1);
    }

    @Test
    void aCompletedLeaseRecordsItsLatencyAFailedOneItsError() {
        registry.register(P1, prefill("m"));
        try (NodeLease lease = registry.acquire(P1).orElseThrow()) {
            assertThat(registry.node(P1).orElseThrow().inFlight()).isEqualTo(1);
            time.advance(Duration.ofMillis(120));
            lease.complete();
        }
        try (NodeLease lease = registry.acquire(P1).orElseThrow()) {
            time.advance(Duration.ofMillis(5000));
            lease.fail("HTTP 500 from /v1/completions");
        }
        NodeView view = registry.node(P1).orElseThrow();
        assertThat(view.inFlight()).isZero();
        assertThat(view.completed()).isEqualTo(1);
        assertThat(view.failures()).isEqualTo(1);
        assertThat(view.meanLatencyMs()).isEqualTo(120.0);
        assertThat(view.lastRequestError()).isEqualTo("HTTP 500 from /v1/completions");
    }

    @Test
    void aLeaseEndsOnceWhateverIsCalledAfterwards() {
        registry.register(P1, prefill("m"));
        NodeLease lease = registry.acquire(P1).orElseThrow();
        assertThat(lease.complete()).isTrue();
        assertThat(lease.complete()).isFalse();
        assertThat(lease.fail("late")).isFalse();
        lease.close();
        lease.close();
        NodeView view = registry.node(P1).orElseThrow();
        assertThat(view.inFlight()).isZero();
        assertThat(view.completed()).isEqualTo(1);
        assertThat(view.failures()).isZero();
    }

    @Test
    void aLeaseClosedWithoutAnOutcomeReleasesAndRecordsNothing() {
        registry.register(P1, prefill("m"));
        try (NodeLease lease = registry.acquire(P1).orElseThrow()) {
            time.advance(Duration.ofSeconds(1));
            throw new IllegalStateException("client went away: " + lease.url());
        } catch (IllegalStateException expected) {
            // The try-with-resources closed the lease on the exception path.
        }
        NodeView view = registry.node(P1).orElseThrow();
        assertThat(view.inFlight()).isZero();
        assertThat(view.completed()).isZero();
        assertThat(view.failures()).isZero();
        assertThat(view.meanLatencyMs()).isNull();
    }

    @Test
    void aLeaseOnARemovedNodeEndsHarmlesslyAndUnknownNodesGiveNoLease() {
        registry.register(P1, prefill("m"));
        NodeLease lease = registry.acquire(P1).orElseThrow();
        registry.remove(P1);
        assertThat(lease.complete()).isTrue();
        assertThat(registry.acquire(P1)).isEmpty();
        registry.register(P1, prefill("m"));
        assertThat(registry.node(P1).orElseThrow().inFlight()).isZero();
    }

    @Test
    void theMeanCoversOnlyTheLatestWindowOfRequests() {
        NodeRegistry small = new NodeRegistry(NodeTableStore.none(), time, 4);
        small.register(P1, prefill("m"));
        for (int i = 0; i < 4; i++) {
            complete(small, Duration.ofMillis(1000));
        }
        assertThat(small.node(P1).orElseThrow().meanLatencyMs()).isEqualTo(1000.0);
        for (int i = 0; i < 3; i++) {
            complete(small, Duration.ofMillis(10));
        }
        assertThat(small.node(P1).orElseThrow().meanLatencyMs()).isEqualTo((1000.0 + 30) / 4);
        complete(small, Duration.ofMillis(10));
        assertThat(small.node(P1).orElseThrow().meanLatencyMs()).isEqualTo(10.0);
        assertThat(small.node(P1).orElseThrow().completed()).isEqualTo(8);
    }

    @Test
    void latenciesAgeOutAndANodeWithNothingRecentIsStale() {
        NodeRegistry aging = new NodeRegistry(NodeTableStore.none(), time, 32, Duration.ofSeconds(30));
        aging.register(P1, prefill("m"));
        complete(aging, Duration.ofMillis(900));
        time.advance(Duration.ofSeconds(20));
        complete(aging, Duration.ofMillis(100));
        NodeView both = aging.node(P1).orElseThrow();
        assertThat(both.meanLatencyMs()).isEqualTo(500.0);
        assertThat(both.stale()).isFalse();
        assertThat(both.hasHistory()).isTrue();

        time.advance(Duration.ofSeconds(15)); // the 900 ms sample is 35 s old, the 100 ms one 15 s
        assertThat(aging.node(P1).orElseThrow().meanLatencyMs()).isEqualTo(100.0);

        time.advance(Duration.ofSeconds(20)); // nothing within 30 s
        NodeView old = aging.node(P1).orElseThrow();
        assertThat(old.meanLatencyMs()).isNull();
        assertThat(old.stale()).isTrue();
        assertThat(old.hasHistory()).isFalse();
        assertThat(old.completed()).isEqualTo(2); // the counters are for operators: they stay

        // a failure is recent history too (a node that only fails is not mistaken for a new one), until it ages
        try (NodeLease lease = aging.acquire(P1).orElseThrow()) {
            lease.fail("boom");
        }
        assertThat(aging.node(P1).orElseThrow().stale()).isFalse();
        assertThat(aging.node(P1).orElseThrow().meanLatencyMs()).isNull();
        time.advance(Duration.ofSeconds(31));
        assertThat(aging.node(P1).orElseThrow().stale()).isTrue();
    }

    private void complete(NodeRegistry r, Duration latency) {
        try (NodeLease lease = r.acquire(P1).orElseThrow()) {
            time.advance(latency);
            lease.complete();
        }
    }

    @Test
    void manyThreadsAcquiringAndReleasingLeaveNoCountBehind() throws Exception {
        NodeRegistry shared = NodeRegistry.inMemory();
        List<String> urls = List.of(P1, P2, D1);
        for (String url : urls) {
            shared.register(url, prefill("m"));
        }
        int threads = 8;
        int perThread = 2_000;
        AtomicInteger completes = new AtomicInteger();
        AtomicInteger fails = new AtomicInteger();
        CountDownLatch go = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                done.add(pool.submit(() -> {
                    go.await();
                    ThreadLocalRandom random = ThreadLocalRandom.current();
                    for (int i = 0; i < perThread; i++) {
                        String url = urls.get(random.nextInt(urls.size()));
                        try (NodeLease lease = shared.acquire(url).orElseThrow()) {
                            int outcome = random.nextInt(3);
                            if (outcome == 0) {
                                lease.complete();
                                completes.incrementAndGet();
                            } else if (outcome == 1) {
                                lease.fail("boom");
                                fails.incrementAndGet();
                            }
                            // outcome 2: closed by try-with-resources only.
                        }
                        // Concurrent readers must never see a negative count.
                        assertThat(shared.node(url).orElseThrow().inFlight()).isNotNegative();
                    }
                    return null;
                }));
            }
            go.countDown();
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        List<NodeView> views = shared.nodes();
        assertThat(views).allSatisfy(v -> assertThat(v.inFlight()).isZero());
        assertThat(views.stream().mapToLong(NodeView::completed).sum()).isEqualTo(completes.get());
        assertThat(views.stream().mapToLong(NodeView::failures).sum()).isEqualTo(fails.get());
    }

    @Test
    void theStatusViewIsSnakeCaseJsonWithAnIsoTimestamp() throws Exception {
        registry.register(P1, new NodeStatus(NodeRole.Prefill, List.of("m"), 1.5));
        JsonNode view = new ObjectMapper().valueToTree(registry.nodes()).get(0);
        assertThat(view.get("url").asText()).isEqualTo(P1);
        assertThat(view.get("role").asText()).isEqualTo("Prefill");
        assertThat(view.get("in_flight").asInt()).isZero();
        assertThat(view.get("mean_latency_ms").isNull()).isTrue();
        assertThat(view.get("speed").asDouble()).isEqualTo(1.5);
        assertThat(view.get("health").asText()).isEqualTo("HEALTHY");
        assertThat(view.get("health_since").asText()).isEqualTo("2025-01-01T00:00:00Z");
        assertThat(view.has("last_error")).isTrue();
        assertThat(view.fieldNames()).toIterable().containsExactly("url", "role", "models", "in_flight",
                "mean_latency_ms", "completed", "failures", "speed", "health", "health_since",
                "consecutive_probe_failures", "last_error", "last_request_error", "source", "stale");
        assertThat(view.get("source").asText()).isEqualTo("api");
        assertThat(view.get("stale").asBoolean()).isFalse();
    }
}
