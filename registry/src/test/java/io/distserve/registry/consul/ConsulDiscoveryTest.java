package io.distserve.registry.consul;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeSource;
import io.distserve.registry.NodeStatus;
import io.distserve.registry.NodeTableFile;
import io.distserve.registry.NodeView;
import io.distserve.registry.TimeSource;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.camel.CamelContext;
import org.apache.camel.impl.DefaultCamelContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two proxies' node tables fed by {@link ConsulDiscovery} from one Consul double, with engines registered by
 * {@link ConsulRegistration} and stood in for by loopback {@code /health} servers.
 */
class ConsulDiscoveryTest {

    private static final ConsulSettings FAST = ConsulRegistrationTest.FAST;

    @TempDir
    Path dir;

    private CamelContext camel;
    private ConsulDouble consul;
    private final List<AutoCloseable> closing = new ArrayList<>();
    private final List<String> removedUrls = new CopyOnWriteArrayList<>();
    private final List<String> addedUrls = new CopyOnWriteArrayList<>();

    @BeforeEach
    void start() throws IOException {
        camel = new DefaultCamelContext();
        camel.start();
        consul = ConsulDouble.start();
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = closing.size() - 1; i >= 0; i--) {
            closing.get(i).close();
        }
        consul.close();
        camel.close();
    }

    private <T extends AutoCloseable> T closeLater(T c) {
        closing.add(c);
        return c;
    }

    private ConsulApi api() {
        return closeLater(ConsulApi.create(camel, ConsulTarget.parse(consul.url(), null, null), FAST.requestTimeout(),
                FAST.blockingWait()));
    }

    private FakeEngineHealth engine(NodeRole role, String model) throws IOException {
        FakeEngineHealth health = closeLater(new FakeEngineHealth());
        closeLater(new ConsulRegistration(api(), new ConsulRegistration.Engine("127.0.0.1", health.port(), role,
                List.of(model), 16, List.of("tcp"), role + "-id"), FAST)).start();
        return health;
    }

    private ConsulDiscovery discover(NodeRegistry registry) {
        ConsulDiscovery d = closeLater(new ConsulDiscovery(api(), registry, FAST.blockingWait(),
                new ConsulDiscovery.Listener() {
                    @Override
                    public void added(List<String> urls) {
                        addedUrls.addAll(urls);
                    }

                    @Override
                    public void removed(String url) {
                        removedUrls.add(url);
                    }
                }));
        d.start();
        return d;
    }

    private static List<String> routable(NodeRegistry registry, NodeRole role) {
        return registry.candidates("tiny", role).stream().map(NodeView::url).toList();
    }

    @Test
    void twoProxiesSeeTheSamePassingEnginesAndDropACriticalOneWithinOneQuery() throws Exception {
        NodeRegistry proxyA = NodeRegistry.inMemory();
        NodeRegistry proxyB = NodeRegistry.inMemory();
        ConsulDiscovery a = discover(proxyA);
        discover(proxyB);
        FakeEngineHealth prefill = engine(NodeRole.Prefill, "tiny");
        FakeEngineHealth decode = engine(NodeRole.Decode, "tiny");
        String prefillUrl = "http://127.0.0.1:" + prefill.port();
        String decodeUrl = "http://127.0.0.1:" + decode.port();

        for (NodeRegistry proxy : List.of(proxyA, proxyB)) {
            await().atMost(Duration.ofSeconds(5)).until(() -> proxy.size() == 2);
            assertThat(routable(proxy, NodeRole.Prefill)).containsExactly(prefillUrl);
            assertThat(routable(proxy, NodeRole.Decode)).containsExactly(decodeUrl);
            NodeView view = proxy.node(decodeUrl).orElseThrow();
            assertThat(view.source()).isEqualTo(NodeSource.CONSUL);
            assertThat(view.models()).containsExactly("tiny");
            assertThat(proxy.status(decodeUrl).orElseThrow().extra().get("block_size").asText()).isEqualTo("16");
        }
        assertThat(a.index()).isPositive();

        // the decode engine's check turns critical: both proxies drop it as soon as Consul's index moves
        decode.status.set(503);
        await().atMost(Duration.ofSeconds(3)).until(() -> "critical".equals(consul.checkStatus(
                ConsulRegistration.serviceId("distserve", "127.0.0.1", decode.port()))));
        long critical = System.nanoTime();
        for (NodeRegistry proxy : List.of(proxyA, proxyB)) {
            await().atMost(Duration.ofSeconds(3)).pollInterval(Duration.ofMillis(10))
                    .until(() -> proxy.node(decodeUrl).isEmpty());
            assertThat(routable(proxy, NodeRole.Prefill)).containsExactly(prefillUrl);
        }
        // well under the blocking wait (1 s here): the query was woken, not timed out
        assertThat(Duration.ofNanos(System.nanoTime() - critical)).isLessThan(Duration.ofMillis(900));
        assertThat(removedUrls).containsExactly(decodeUrl, decodeUrl);

        decode.status.set(200);
        for (NodeRegistry proxy : List.of(proxyA, proxyB)) {
            await().atMost(Duration.ofSeconds(3)).until(() -> routable(proxy, NodeRole.Decode).contains(decodeUrl));
        }
        assertThat(addedUrls).contains(prefillUrl, decodeUrl);
    }

    @Test
    void consulNodesLiveBesideApiNodesAndAreNeverSavedToTheNodeTableFile() throws Exception {
        Path file = dir.resolve("nodes.json");
        NodeRegistry proxy = new NodeRegistry(new NodeTableFile(file), TimeSource.system());
        proxy.register("http://127.0.0.1:1", new NodeStatus(NodeRole.Hybrid, List.of("tiny"), null));
        FakeEngineHealth decode = engine(NodeRole.Decode, "tiny");
        String decodeUrl = "http://127.0.0.1:" + decode.port();
        // the operator also added a node that Consul lists: it stays an API node
        FakeEngineHealth prefill = engine(NodeRole.Prefill, "tiny");
        String prefillUrl = "http://127.0.0.1:" + prefill.port();
        proxy.register(prefillUrl, new NodeStatus(NodeRole.Prefill, List.of("tiny"), 2.0));
        discover(proxy);

        await().atMost(Duration.ofSeconds(5)).until(() -> proxy.node(decodeUrl).isPresent());
        assertThat(proxy.nodes()).extracting(NodeView::url, NodeView::source).containsExactly(
                org.assertj.core.groups.Tuple.tuple("http://127.0.0.1:1", NodeSource.API),
                org.assertj.core.groups.Tuple.tuple(prefillUrl, NodeSource.API),
                org.assertj.core.groups.Tuple.tuple(decodeUrl, NodeSource.CONSUL));
        assertThat(proxy.node(prefillUrl).orElseThrow().speed()).isEqualTo(2.0);
        String saved = Files.readString(file);
        assertThat(saved).contains("http://127.0.0.1:1").contains(prefillUrl).doesNotContain(decodeUrl);

        // Consul drops both: only its own node leaves
        prefill.status.set(500);
        decode.status.set(500);
        await().atMost(Duration.ofSeconds(3)).until(() -> proxy.node(decodeUrl).isEmpty());
        assertThat(proxy.node(prefillUrl)).isPresent();

        // a restarted proxy starts from the file, without the Consul node, and learns it again from Consul
        decode.status.set(200);
        NodeRegistry restarted = new NodeRegistry(new NodeTableFile(file), TimeSource.system());
        assertThat(restarted.nodes()).extracting(NodeView::url).containsExactly("http://127.0.0.1:1", prefillUrl);
        discover(restarted);
        await().atMost(Duration.ofSeconds(5)).until(() -> restarted.node(decodeUrl).isPresent());
    }

    @Test
    void aNodeRemovedByHandComesBackWhileConsulListsItAndConsulOutagesKeepTheTable() throws Exception {
        NodeRegistry proxy = NodeRegistry.inMemory();
        FakeEngineHealth decode = engine(NodeRole.Decode, "tiny");
        String decodeUrl = "http://127.0.0.1:" + decode.port();
        discover(proxy);
        await().atMost(Duration.ofSeconds(5)).until(() -> proxy.node(decodeUrl).isPresent());

        proxy.remove(decodeUrl);
        // the next answer (at the latest when the 1 s blocking wait ends) puts it back
        await().atMost(Duration.ofSeconds(3)).until(() -> proxy.node(decodeUrl).isPresent());

        consul.close();
        await().pollDelay(Duration.ofMillis(800)).atMost(Duration.ofSeconds(2)).until(() -> true);
        assertThat(proxy.node(decodeUrl)).as("Consul unreachable is not the engine's fault").isPresent();
    }

    @Test
    void anIndexThatWentBackwardsIsResetSoChangesStillWakeTheQueryAtOnce() throws Exception {
        NodeRegistry proxy = NodeRegistry.inMemory();
        ConsulDiscovery d = closeLater(new ConsulDiscovery(api(), proxy, Duration.ofSeconds(2), null));
        d.start();
        assertThat(d.awaitFirstAnswer(Duration.ofSeconds(5))).isTrue();
        await().atMost(Duration.ofSeconds(2)).until(() -> d.index() > 0);
        long before = d.index();

        consul.rewindIndex(1);
        // the query blocked on the old index returns when its wait ends, with index 1 < before: reset to 0, then
        // block on the fresh index
        await().atMost(Duration.ofSeconds(8)).until(() -> d.index() > 0 && d.index() < before);
        FakeEngineHealth decode = engine(NodeRole.Decode, "tiny");
        long registered = System.nanoTime();
        await().atMost(Duration.ofSeconds(5)).pollInterval(Duration.ofMillis(10))
                .until(() -> proxy.node("http://127.0.0.1:" + decode.port()).isPresent());
        // woken by the change, not by the end of a 2 s wait
        assertThat(Duration.ofNanos(System.nanoTime() - registered)).isLessThan(Duration.ofMillis(1000));
    }

    @Test
    void instancesWithUnreadableMetaAreSkipped() throws Exception {
        NodeRegistry proxy = NodeRegistry.inMemory();
        HttpClient http = HttpClient.newHttpClient();
        for (String body : List.of(
                "{\"ID\":\"odd\",\"Name\":\"distserve\",\"Address\":\"127.0.0.1\",\"Port\":7001,"
                        + "\"Meta\":{\"role\":\"Sideways\"}}",
                "{\"ID\":\"plain\",\"Name\":\"distserve\",\"Port\":7002,\"Meta\":{\"models\":\"a, b\"}}")) {
            assertThat(http.send(HttpRequest.newBuilder(URI.create(consul.url() + "/v1/agent/service/register"))
                    .PUT(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString())
                    .statusCode()).isEqualTo(200);
        }
        discover(proxy);
        // no service address: the node's; no role: Hybrid (LMDeploy's default)
        await().atMost(Duration.ofSeconds(5)).until(() -> proxy.node("http://127.0.0.1:7002").isPresent());
        NodeView plain = proxy.node("http://127.0.0.1:7002").orElseThrow();
        assertThat(plain.role()).isEqualTo(NodeRole.Hybrid);
        assertThat(plain.models()).containsExactly("a", "b");
        assertThat(proxy.size()).isEqualTo(1);
    }
}
