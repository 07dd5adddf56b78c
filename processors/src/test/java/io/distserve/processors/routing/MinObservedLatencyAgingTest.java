package io.distserve.processors.routing;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.registry.NodeLease;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeStatus;
import io.distserve.registry.NodeTableStore;
import io.distserve.registry.TimeSource;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * min_observed_latency over a real registry, on a clock the test moves: one slow answer must not keep a node out
 * of the rotation forever. Its latency ages out (the registry's latency max age, 30 s by default), the node counts as
 * unmeasured again and gets the next request; if it is fast now, it wins on its new latency.
 */
class MinObservedLatencyAgingTest {

    private static final String SLOW_ONCE = "http://10.0.0.1:23333";
    private static final String STEADY = "http://10.0.0.2:23333";

    private final AtomicLong nanos = new AtomicLong(1_000_000_000L);
    private final TimeSource time = new TimeSource() {
        @Override
        public Instant now() {
            return Instant.EPOCH.plusNanos(nanos.get());
        }

        @Override
        public long nanoTime() {
            return nanos.get();
        }
    };
    private final NodeRegistry registry = new NodeRegistry(NodeTableStore.none(), time);
    private final NodeRouter router = new NodeRouter(registry, new MinObservedLatencyStrategy(new Random(1)));

    /** Routes one request that takes {@code millis}; returns the node it went to. */
    private String request(long millis) {
        return request(millis, millis, null);
    }

    /** Routes one request, which takes {@code millisThere} on {@code node} and {@code millis} elsewhere. */
    private String request(long millis, long millisThere, String node) {
        NodeLease lease = router.acquire("m", NodeRole.Hybrid).orElseThrow();
        nanos.addAndGet(Duration.ofMillis(lease.url().equals(node) ? millisThere : millis).toNanos());
        lease.complete();
        return lease.url();
    }

    @Test
    void aNodeWithOneSlowAnswerIsTriedAgainOnceThatAnswerIsOld() {
        registry.register(SLOW_ONCE, new NodeStatus(NodeRole.Hybrid, List.of("m"), null));
        registry.register(STEADY, new NodeStatus(NodeRole.Hybrid, List.of("m"), null));
        // both new: one request each; the first (whichever node it is) hits a hiccup and takes 900 ms
        String first = request(900);
        String second = request(20);
        assertThat(List.of(first, second)).containsExactlyInAnyOrder(SLOW_ONCE, STEADY);
        String hiccup = first;
        String other = second;

        // for a while the steady node gets everything: one slow sample is what min_observed_latency knows
        for (int i = 0; i < 50; i++) {
            assertThat(request(20)).isEqualTo(other);
            nanos.addAndGet(Duration.ofMillis(100).toNanos());
        }
        // within two minutes the 900 ms answer is history: the node is tried again, answers in 5 ms, and is now
        // the fastest (a window without ageing kept the old sample forever: the node never saw another request)
        boolean triedAgain = false;
        for (int i = 0; i < 1200 && !triedAgain; i++) {
            triedAgain = request(20, 5, hiccup).equals(hiccup);
            nanos.addAndGet(Duration.ofMillis(100).toNanos());
        }
        assertThat(triedAgain).as("the node with one old slow answer got a request again").isTrue();
        for (int i = 0; i < 20; i++) {
            assertThat(request(20, 5, hiccup)).isEqualTo(hiccup);
        }
    }
}
