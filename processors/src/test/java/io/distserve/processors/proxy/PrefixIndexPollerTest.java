package io.distserve.processors.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpServer;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.engine.tokenizer.ModelTokenizer;
import io.distserve.processors.routing.kv.PrefixIndex;
import io.distserve.processors.routing.kv.ProxyTokenizers;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeStatus;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The poller against a scripted engine: snapshots, deltas, a restart, a failing feed, the tokenizer fetch. */
class PrefixIndexPollerTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    private HttpServer server;
    private String url;
    private final List<String> queries = new CopyOnWriteArrayList<>();
    private final AtomicReference<String> epoch = new AtomicReference<>("e1");
    private final AtomicReference<List<String>> stored = new AtomicReference<>(List.of("00000000000000aa"));
    private final AtomicInteger status = new AtomicInteger(200);
    private final AtomicInteger tokenizerFetches = new AtomicInteger();
    private final NodeRegistry registry = NodeRegistry.inMemory();
    private final PrefixIndex index = new PrefixIndex();
    private final ProxyTokenizers tokenizers = new ProxyTokenizers();
    private PrefixIndexPoller poller;

    @BeforeEach
    void start() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 1, null).withThreads(1).writeTo(model);
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/distserve/prefix_cache", ex -> {
            String q = ex.getRequestURI().getRawQuery();
            queries.add(q == null ? "" : q);
            ObjectNode f = JSON.createObjectNode();
            boolean snapshot = q == null || !q.contains("epoch=" + epoch.get());
            f.put("epoch", epoch.get());
            f.put("enabled", true);
            f.put("block_size", 16);
            f.put("hash_salt", "0000000000000007");
            f.put("blocks_used", 3);
            f.put("blocks_total", 100);
            f.put("next", 10);
            f.put("reset", snapshot);
            var s = f.putArray("stored");
            if (snapshot) {
                stored.get().forEach(s::add);
            }
            f.putArray("removed");
            byte[] body = f.toString().getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(status.get(), body.length);
            ex.getResponseBody().write(body);
            ex.close();
        });
        server.createContext("/distserve/tokenizer", ex -> {
            tokenizerFetches.incrementAndGet();
            ObjectNode a = JSON.createObjectNode();
            a.put("model", "tiny");
            ObjectNode files = a.putObject("files");
            for (String name : ModelTokenizer.FILES) {
                Path f = model.resolve(name);
                if (Files.exists(f)) {
                    files.put(name, Files.readString(f));
                }
            }
            byte[] body = a.toString().getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            ex.getResponseBody().write(body);
            ex.close();
        });
        server.start();
        url = "http://127.0.0.1:" + server.getAddress().getPort();
        registry.register(url, new NodeStatus(NodeRole.Hybrid, List.of("tiny"), null));
        poller = new PrefixIndexPoller(registry, new NodeClient(Duration.ofSeconds(1), null, JSON), index, tokenizers,
                Duration.ofMillis(50), Duration.ofSeconds(1));
    }

    @AfterEach
    void stop() {
        poller.close();
        server.stop(0);
        tokenizers.close();
    }

    @Test
    void snapshotThenDeltasThenARestartStartsOverAndAFailingFeedIsDropped() throws Exception {
        poller.pollAll();
        var idx = index.node(url).orElseThrow();
        assertThat(queries.get(0)).isEmpty();
        assertThat(idx.overlapBlocks(new long[] {0xaa})).isEqualTo(1);
        assertThat(idx.blocksUsed()).isEqualTo(3);
        assertThat(idx.hasher().blockSize()).isEqualTo(16);

        poller.pollAll();
        assertThat(queries.get(1)).isEqualTo("epoch=e1&since=10");
        assertThat(index.node(url).orElseThrow().overlapBlocks(new long[] {0xaa})).isEqualTo(1);

        // the engine restarts: another epoch, an empty cache
        epoch.set("e2");
        stored.set(List.of());
        poller.pollAll();
        assertThat(index.node(url).orElseThrow().overlapBlocks(new long[] {0xaa})).isZero();

        status.set(500);
        poller.pollAll();
        assertThat(index.node(url)).isEmpty();

        registry.remove(url);
        status.set(200);
        poller.pollAll();
        assertThat(index.size()).isZero();
    }

    @Test
    void theModelsTokenizerIsFetchedOnceAndTokenizesAsTheEngine() throws Exception {
        poller.pollAll();
        poller.pollAll();
        assertThat(tokenizerFetches.get()).isEqualTo(1);
        ModelTokenizer t = tokenizers.forModel("tiny").orElseThrow();
        try (ModelTokenizer engines = ModelTokenizer.load(dir.resolve("tiny"))) {
            assertThat(t.encodePrompt("Shanghai is a city that ")).containsExactly(
                    engines.encodePrompt("Shanghai is a city that "));
        }
        assertThat(tokenizers.forModel(null)).isPresent(); // the only model
    }

    @Test
    void theTimerPollsByItself() throws Exception {
        poller.start();
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(5))
                .until(() -> index.node(url).isPresent() && queries.size() >= 3);
    }
}
