package io.distserve.registry;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The real HTTP probe against a real (tiny) server on loopback. */
class HttpHealthProbeTest {

    private final AtomicInteger status = new AtomicInteger(200);
    private final AtomicReference<String> authorization = new AtomicReference<>();
    private final CountDownLatch release = new CountDownLatch(1);
    private volatile boolean hang;
    private HttpServer server;
    private ExecutorService handlers;
    private String url;

    @BeforeEach
    void startServer() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/health", exchange -> {
            authorization.set(exchange.getRequestHeaders().getFirst("Authorization"));
            if (hang) {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            exchange.sendResponseHeaders(status.get(), -1);
            exchange.close();
        });
        handlers = Executors.newCachedThreadPool();
        server.setExecutor(handlers);
        server.start();
        url = "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @AfterEach
    void stopServer() throws InterruptedException {
        release.countDown();
        server.stop(0);
        handlers.shutdownNow();
        handlers.awaitTermination(5, TimeUnit.SECONDS);
    }

    @Test
    void healthyOn200AndSendsTheBearerKey() throws Exception {
        ProbeResult result = new HttpHealthProbe(Duration.ofSeconds(2), "sk-proxy").probe(url);
        assertThat(result).isEqualTo(ProbeResult.ok());
        assertThat(authorization.get()).isEqualTo("Bearer sk-proxy");
    }

    @Test
    void sendsNoAuthorizationWithoutAKeyAndFailsOnANon200() throws Exception {
        status.set(503);
        ProbeResult result = new HttpHealthProbe(Duration.ofSeconds(2), null).probe(url);
        assertThat(result.healthy()).isFalse();
        assertThat(result.error()).isEqualTo("GET /health answered HTTP 503");
        assertThat(authorization.get()).isNull();
    }

    @Test
    void aRefusedConnectionIsAFailedProbe() throws Exception {
        server.stop(0);
        ProbeResult result = new HttpHealthProbe(Duration.ofSeconds(2), null).probe(url);
        assertThat(result.healthy()).isFalse();
        assertThat(result.error()).startsWith("GET /health failed: ");
    }

    @Test
    void theProbeItselfGivesUpOnAServerThatNeverAnswers() throws Exception {
        hang = true;
        long start = System.nanoTime();
        ProbeResult result = new HttpHealthProbe(Duration.ofMillis(300), null).probe(url);
        long elapsedMs = (System.nanoTime() - start) / 1_000_000;
        assertThat(result).isEqualTo(ProbeResult.failed("GET /health timed out after 300 ms"));
        assertThat(elapsedMs).isBetween(250L, 2_000L);
    }

    @Test
    void aServerThatNeverAnswersFailsTheCheckerRoundWithinTheTimeout() {
        hang = true;
        ManualTime time = new ManualTime();
        NodeRegistry registry = new NodeRegistry(NodeTableStore.none(), time);
        registry.register(url, new NodeStatus(NodeRole.Decode, List.of("m"), null));
        HealthCheckSettings settings = HealthCheckSettings.DEFAULTS.withUnhealthyAfter(1)
                .withProbeTimeout(Duration.ofMillis(400));
        try (HealthChecker checker = new HealthChecker(registry,
                new HttpHealthProbe(settings.probeTimeout(), "sk-proxy"), settings, time)) {
            long start = System.nanoTime();
            checker.checkNow();
            long elapsedMs = (System.nanoTime() - start) / 1_000_000;
            assertThat(elapsedMs).isBetween(350L, 2_500L);
        }
        NodeView node = registry.node(url).orElseThrow();
        assertThat(node.health()).isEqualTo(HealthStatus.UNHEALTHY);
        assertThat(node.lastError()).containsAnyOf("timed out after 400 ms", "no answer within 400 ms");
        assertThat(authorization.get()).isEqualTo("Bearer sk-proxy");
    }
}
