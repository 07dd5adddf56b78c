package io.distserve.processors.disagg;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpServer;
import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportRegistry;
import io.distserve.processors.openai.OpenAiException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * KV migration between two real engines' pools (TINY checkpoint, blocks of 16 tokens) over the real TCP transport:
 * connect, validated pull, flow control, failures. The engines' loops are idle: the test owns the block managers.
 */
class MigrationServiceTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BLOCK = 16;
    private static final int BLOCKS = 64;
    private static final MigrationService.Settings SETTINGS = new MigrationService.Settings(Duration.ofSeconds(2),
            Duration.ofSeconds(5), Duration.ofMillis(1500), 4, Duration.ofSeconds(2));

    @TempDir
    static Path dir;

    static LoadedModel prefillModel;
    static LoadedModel decodeModel;
    static HttpServer ackServer;
    static final List<JsonNode> acks = new CopyOnWriteArrayList<>();
    static URI prefillUrl;
    static MigrationService prefill;
    static MigrationService decode;
    static final AtomicInteger decodeConnects = new AtomicInteger();

    static BlockManager prefillBlocks;
    static BlockManager decodeBlocks;
    static KvCacheLayout layout;
    static long bpb;

    @BeforeAll
    static void start() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 11, null).withThreads(1).writeTo(model);
        EngineOptions options = new EngineOptions("cpu", BLOCK, 0.8, BLOCKS, 1, EngineConfig.defaults());
        prefillModel = LoadedModel.load(model, options);
        decodeModel = LoadedModel.load(model, options);
        prefillBlocks = prefillModel.engine().blockManager();
        decodeBlocks = decodeModel.engine().blockManager();
        layout = prefillModel.backend().kvLayout();
        bpb = layout.bytesPerBlock();

        // The prefill engine's HTTP side, as far as the decode engine uses it: free_cache acknowledgements.
        ackServer = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        ackServer.createContext("/distserve/free_cache", exchange -> {
            JsonNode ack = JSON.readTree(exchange.getRequestBody().readAllBytes());
            acks.add(ack);
            boolean held = !ack.path("remote_session_id").asText().startsWith("gone");
            byte[] body = ("{\"freed\":" + held + "}").getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        ackServer.start();
        prefillUrl = URI.create("http://127.0.0.1:" + ackServer.getAddress().getPort());

        prefill = service("P", prefillModel, tcp());
        decode = service("D", decodeModel, new CountingTransport(tcp(), decodeConnects));
        connect(decode, "P", prefill);
    }

    @AfterAll
    static void stop() {
        for (AutoCloseable c : new AutoCloseable[] {decode, prefill, decodeModel, prefillModel}) {
            try {
                if (c != null) {
                    c.close();
                }
            } catch (Exception ignored) {
                // best effort
            }
        }
        if (ackServer != null) {
            ackServer.stop(0);
        }
    }

    @AfterEach
    void everyBlockIsBack() {
        assertThat(decodeBlocks.freeCount()).as("decode blocks leaked").isEqualTo(BLOCKS);
        assertThat(prefillBlocks.freeCount()).as("prefill blocks leaked").isEqualTo(BLOCKS);
    }

    static KvTransport tcp() {
        return TransportRegistry.discover().create("tcp", TransportOptions.defaults());
    }

    static MigrationService service(String id, LoadedModel m, KvTransport transport) throws TransferException {
        return new MigrationService(id, m.backend().kvLayout(), m.engine().blockManager(),
                KvPool.of(m.backend()).region(), List.of(transport), m.config().vocabSize(),
                m.config().maxPositions(), SETTINGS, null, JSON,
                new io.distserve.processors.metrics.MigrationMetrics(
                        new io.micrometer.core.instrument.simple.SimpleMeterRegistry()));
    }

    /** What a proxy does: p2p_initialize on the prefill side, p2p_connect on the decode side, through JSON. */
    static void connect(MigrationService decodeSide, String prefillId, MigrationService prefillSide) {
        ObjectNode init = prefillSide.initialize(decodeSide.engineId());
        assertThat(init.path("engine_id").asText()).isEqualTo(prefillSide.engineId());
        decodeSide.connect(prefillId, prefillUrl, Endpoints.read(init.get("endpoint"), "remote_endpoint"),
                KvLayouts.read(init.get("kv_layout"), "remote_kv_layout"));
    }

    static int[] prompt(int length) {
        int[] p = new int[length];
        for (int i = 0; i < length; i++) {
            p[i] = 1 + (i * 7) % 200;
        }
        return p;
    }

    static MigrationRequest request(String engine, String session, int[] remoteBlocks, int promptLength) {
        return new MigrationRequest("tcp", engine, session, remoteBlocks, 42, prompt(promptLength), 0);
    }

    static ByteBuffer pool(LoadedModel m) {
        List<ByteBuffer> chunks = m.backend().hostKvChunks();
        assertThat(chunks).hasSize(1);
        return chunks.get(0);
    }

    static void fill(LoadedModel m, int block, int seed) {
        ByteBuffer pool = pool(m);
        long base = block * bpb;
        for (int i = 0; i < bpb; i++) {
            pool.put((int) (base + i), (byte) (seed * 31 + i * 7 + (i >> 8)));
        }
    }

    static byte[] bytesOf(LoadedModel m, int block) {
        ByteBuffer pool = pool(m);
        byte[] out = new byte[(int) bpb];
        pool.get((int) (block * bpb), out);
        return out;
    }

    /** Asserts a 400 naming {@code param}, and that no decode block was taken. */
    static void assertBadRequest(MigrationRequest req, String param) {
        int free = decodeBlocks.freeCount();
        assertThatThrownBy(() -> decode.pull(req)).isInstanceOfSatisfying(OpenAiException.class, e -> {
            assertThat(e.status()).isEqualTo(400);
            assertThat(e.param()).isEqualTo(param);
        });
        assertThat(decodeBlocks.freeCount()).isEqualTo(free);
    }

    // ------------------------------------------------------------------------------------------------ tests

    @Test
    void pullCopiesExactlyTheRemoteBlocksInOrderAndAcknowledges() throws Exception {
        int[] taken = prefillBlocks.allocate(6).orElseThrow();
        int[] remote = {taken[5], taken[1], taken[3]}; // not sorted, not contiguous
        for (int b : taken) {
            fill(prefillModel, b, b + 1);
        }
        ByteBuffer decodePool = pool(decodeModel);
        for (int i = 0; i < decodePool.capacity(); i++) {
            decodePool.put(i, (byte) 0x55);
        }
        acks.clear();

        MigratedKv kv = decode.pull(request("P", "sess-copy", remote, 40)); // 40 tokens: 3 blocks of 16
        try {
            assertThat(kv.localBlocks()).hasSize(3).doesNotHaveDuplicates();
            assertThat(kv.firstToken()).isEqualTo(42);
            assertThat(kv.remoteEngineId()).isEqualTo("P");
            assertThat(kv.remoteSessionId()).isEqualTo("sess-copy");
            for (int i = 0; i < 3; i++) {
                assertThat(decodeBlocks.refCount(kv.localBlocks()[i])).isEqualTo(1);
                assertThat(bytesOf(decodeModel, kv.localBlocks()[i]))
                        .as("local block %d <- remote block %d", kv.localBlocks()[i], remote[i])
                        .isEqualTo(bytesOf(prefillModel, remote[i]));
            }
            byte[] untouched = new byte[(int) bpb];
            java.util.Arrays.fill(untouched, (byte) 0x55);
            for (int b = 0; b < BLOCKS; b++) {
                if (decodeBlocks.refCount(b) == 0) {
                    assertThat(bytesOf(decodeModel, b)).as("block %d was not pulled into", b).isEqualTo(untouched);
                }
            }
            await().atMost(Duration.ofSeconds(5)).until(() -> !acks.isEmpty());
            assertThat(acks).hasSize(1);
            assertThat(acks.get(0).path("remote_engine_id").asText()).isEqualTo("P");
            assertThat(acks.get(0).path("remote_session_id").asText()).isEqualTo("sess-copy");
        } finally {
            decode.release(kv.localBlocks());
            prefillBlocks.free(taken);
        }
    }

    @Test
    void promptsOfOneBlockAndOfOneToken() throws Exception {
        int[] remote = prefillBlocks.allocate(1).orElseThrow();
        try {
            fill(prefillModel, remote[0], 9);
            for (int length : new int[] {1, BLOCK}) {
                MigratedKv kv = decode.pull(request("P", "s" + length, remote, length));
                assertThat(bytesOf(decodeModel, kv.localBlocks()[0])).isEqualTo(bytesOf(prefillModel, remote[0]));
                decode.release(kv.localBlocks());
            }
        } finally {
            prefillBlocks.free(remote);
        }
    }

    @Test
    void aLeaseThatWasGoneWhenThePullEndedMakesThePulledKvUnusable() throws Exception {
        int[] remote = prefillBlocks.allocate(2).orElseThrow();
        try {
            assertThatThrownBy(() -> decode.pull(request("P", "gone-expired", remote, 20)))
                    .isInstanceOfSatisfying(OpenAiException.class, e -> {
                        assertThat(e.status()).isEqualTo(503);
                        assertThat(e.code()).isEqualTo("kv_lease_gone");
                        assertThat(e.param()).isEqualTo("migration_request.remote_session_id");
                    });
            assertThat(decodeBlocks.freeCount()).isEqualTo(BLOCKS);
        } finally {
            prefillBlocks.free(remote);
        }
    }

    @Test
    void validationFailuresAre400sAndTakeNoBlock() {
        int vocab = decodeModel.config().vocabSize();
        int context = decodeModel.config().maxPositions();
        assertBadRequest(request("nobody", "s", new int[] {0, 1, 2}, 40), "migration_request.remote_engine_id");
        assertBadRequest(new MigrationRequest("rdma", "P", "s", new int[] {0, 1, 2}, 42, prompt(40), 0),
                "migration_request.protocol");
        assertBadRequest(request("P", "s", new int[] {0, BLOCKS, 2}, 40), "migration_request.remote_block_ids");
        assertBadRequest(request("P", "s", new int[] {0, 1, Integer.MAX_VALUE}, 40),
                "migration_request.remote_block_ids");
        assertBadRequest(request("P", "s", new int[] {0, 1}, 40), "migration_request.remote_block_ids");
        assertBadRequest(request("P", "s", new int[] {0, 1, 2, 3}, 40), "migration_request.remote_block_ids");
        assertBadRequest(request("P", "s", new int[] {0, 1}, 16), "migration_request.remote_block_ids");
        assertBadRequest(new MigrationRequest("tcp", "P", "s", new int[] {0, 1, 2}, vocab, prompt(40), 0),
                "migration_request.remote_token_id");
        int[] outside = prompt(40);
        outside[7] = vocab;
        assertBadRequest(new MigrationRequest("tcp", "P", "s", new int[] {0, 1, 2}, 42, outside, 0),
                "migration_request.prompt_token_ids");
        int[] all = new int[layout.blocksFor(context)];
        for (int i = 0; i < all.length; i++) {
            all[i] = i % BLOCKS;
        }
        assertBadRequest(request("P", "s", all, context), "migration_request.prompt_token_ids");
        // A prompt that fits the context but needs more blocks than the whole pool
        int[] many = new int[BLOCKS + 1];
        for (int i = 0; i < many.length; i++) {
            many[i] = i % BLOCKS;
        }
        assertThatThrownBy(() -> decode.pull(request("P", "s", many, (BLOCKS + 1) * BLOCK - 3)))
                .isInstanceOfSatisfying(OpenAiException.class, e -> assertThat(e.status()).isEqualTo(400));
        assertThat(acks.stream().filter(a -> a.path("remote_session_id").asText().equals("s"))).isEmpty();
    }

    @Test
    void connectRejectsAnIncompatibleLayoutOrTransport() {
        ObjectNode init = prefill.initialize("D");
        EndpointInfo endpoint = Endpoints.read(init.get("endpoint"), "remote_endpoint");
        int before = decodeConnects.get();
        List<KvCacheLayout> incompatible = List.of(
                new KvCacheLayout(layout.numLayers() + 1, layout.numKvHeads(), layout.headDim(), BLOCK, BLOCKS,
                        layout.dtype()),
                new KvCacheLayout(layout.numLayers(), layout.numKvHeads() * 2, layout.headDim(), BLOCK, BLOCKS,
                        layout.dtype()),
                new KvCacheLayout(layout.numLayers(), layout.numKvHeads(), layout.headDim() / 2, BLOCK, BLOCKS,
                        layout.dtype()),
                new KvCacheLayout(layout.numLayers(), layout.numKvHeads(), layout.headDim(), BLOCK * 4, BLOCKS,
                        layout.dtype()),
                new KvCacheLayout(layout.numLayers(), layout.numKvHeads(), layout.headDim(), BLOCK, BLOCKS,
                        io.distserve.engine.safetensors.DType.BF16));
        for (KvCacheLayout other : incompatible) {
            assertThatThrownBy(() -> decode.connect("X", prefillUrl, endpoint, other))
                    .isInstanceOfSatisfying(OpenAiException.class, e -> {
                        assertThat(e.status()).isEqualTo(400);
                        assertThat(e.param()).isEqualTo("kv_layout");
                    });
        }
        EndpointInfo rdma = new EndpointInfo("rdma", endpoint.host(), endpoint.port(), endpoint.regionSize(),
                endpoint.segmentSizes(), endpoint.token(), endpoint.attributes());
        assertThatThrownBy(() -> decode.connect("X", prefillUrl, rdma, layout))
                .isInstanceOfSatisfying(OpenAiException.class, e -> assertThat(e.status()).isEqualTo(400));
        // A different pool size is fine: block ids are checked against the peer's own count at pull time.
        assertThat(decode.connectedPeers()).doesNotContain("X");
        assertThat(decodeConnects.get()).isEqualTo(before);

        ObjectNode info = JSON.createObjectNode();
        decode.describe(info);
        assertThat(info.path("peers").toString()).doesNotContain("\"X\"");
    }

    @Test
    void aFullPoolMakesThePullWaitUntilBlocksAreFreed() throws Exception {
        int[] remote = prefillBlocks.allocate(3).orElseThrow();
        int[] hog = decodeBlocks.allocate(BLOCKS - 1).orElseThrow();
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            for (int b : remote) {
                fill(prefillModel, b, 100 + b);
            }
            Future<MigratedKv> pulling = pool.submit(() -> decode.pull(request("P", "sess-wait", remote, 33)));
            Thread.sleep(300);
            assertThat(pulling.isDone()).as("a 3-block migration must wait while 1 block is free").isFalse();
            assertThat(decodeBlocks.freeCount()).isEqualTo(1);

            decodeBlocks.free(hog);
            hog = null;
            MigratedKv kv = pulling.get(5, TimeUnit.SECONDS);
            for (int i = 0; i < 3; i++) {
                assertThat(bytesOf(decodeModel, kv.localBlocks()[i])).isEqualTo(bytesOf(prefillModel, remote[i]));
            }
            decode.release(kv.localBlocks());
        } finally {
            if (hog != null) {
                decodeBlocks.free(hog);
            }
            prefillBlocks.free(remote);
            pool.shutdownNow();
        }
    }

    @Test
    void aPullThatFindsNoBlocksInTimeIs503AndTakesNone() {
        int[] hog = decodeBlocks.allocate(BLOCKS - 2).orElseThrow();
        try {
            long t0 = System.nanoTime();
            assertThatThrownBy(() -> decode.pull(request("P", "sess-timeout", new int[] {0, 1, 2}, 40)))
                    .isInstanceOfSatisfying(OpenAiException.class, e -> assertThat(e.status()).isEqualTo(503));
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(Duration.ofMillis(1400));
            assertThat(decodeBlocks.freeCount()).isEqualTo(2);
        } finally {
            decodeBlocks.free(hog);
        }
    }

    @Test
    void tooManyWaitingMigrationsAre429() throws Exception {
        int[] hog = decodeBlocks.allocate(BLOCKS).orElseThrow();
        ExecutorService pool = Executors.newFixedThreadPool(SETTINGS.maxWaitingMigrations());
        try {
            List<Future<?>> waiting = new ArrayList<>();
            for (int i = 0; i < SETTINGS.maxWaitingMigrations(); i++) {
                waiting.add(pool.submit(() -> decode.pull(request("P", "w", new int[] {0}, 5))));
            }
            Thread.sleep(200);
            assertThatThrownBy(() -> decode.pull(request("P", "one-too-many", new int[] {0}, 5)))
                    .isInstanceOfSatisfying(OpenAiException.class, e -> assertThat(e.status()).isEqualTo(429));
            for (Future<?> f : waiting) {
                assertThatThrownBy(() -> f.get(5, TimeUnit.SECONDS)).hasCauseInstanceOf(OpenAiException.class);
            }
        } finally {
            decodeBlocks.free(hog);
            pool.shutdownNow();
        }
    }

    @Test
    void aDeadPeerIs503FreesTheBlocksAndAReconnectedPeerWorksAgain() throws Exception {
        MigrationService doomed = service("P2", prefillModel, tcp());
        connect(decode, "P2", doomed);
        int[] remote = prefillBlocks.allocate(2).orElseThrow();
        MigrationService reborn = null;
        try {
            for (int b : remote) {
                fill(prefillModel, b, 7 * b);
            }
            MigratedKv ok = decode.pull(request("P2", "before", remote, 20));
            decode.release(ok.localBlocks());

            doomed.close(); // the prefill engine's transfer server dies
            int free = decodeBlocks.freeCount();
            assertThatThrownBy(() -> decode.pull(request("P2", "during", remote, 20)))
                    .isInstanceOfSatisfying(OpenAiException.class, e -> assertThat(e.status()).isEqualTo(503));
            assertThat(decodeBlocks.freeCount()).isEqualTo(free);

            reborn = service("P2", prefillModel, tcp()); // restarted: new port, new token
            connect(decode, "P2", reborn);
            assertThat(decode.connectedPeers()).contains("P", "P2");
            MigratedKv kv = decode.pull(request("P2", "after", remote, 20));
            for (int i = 0; i < 2; i++) {
                assertThat(bytesOf(decodeModel, kv.localBlocks()[i])).isEqualTo(bytesOf(prefillModel, remote[i]));
            }
            decode.release(kv.localBlocks());
            // the other peer was not disturbed
            MigratedKv other = decode.pull(request("P", "other", remote, 20));
            decode.release(other.localBlocks());
        } finally {
            decode.drop("P2");
            if (reborn != null) {
                reborn.close();
            }
            doomed.close();
            prefillBlocks.free(remote);
        }
    }

    @Test
    void concurrentConnectsForOnePeerMakeOneConnection() throws Exception {
        ObjectNode init = prefill.initialize("D");
        EndpointInfo endpoint = Endpoints.read(init.get("endpoint"), "remote_endpoint");
        int before = decodeConnects.get();
        int callers = 8;
        CountDownLatch go = new CountDownLatch(1);
        List<CompletableFuture<Void>> all = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(callers);
        try {
            for (int i = 0; i < callers; i++) {
                all.add(CompletableFuture.runAsync(() -> {
                    try {
                        go.await();
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                    decode.connect("PC", prefillUrl, endpoint, layout);
                }, pool));
            }
            go.countDown();
            CompletableFuture.allOf(all.toArray(new CompletableFuture[0])).get(10, TimeUnit.SECONDS);
            assertThat(decodeConnects.get() - before).isEqualTo(1);
            assertThat(decode.connectedPeers()).containsOnlyOnce("PC");
            // connecting again with the same endpoint is a no-op
            decode.connect("PC", prefillUrl, endpoint, layout);
            assertThat(decodeConnects.get() - before).isEqualTo(1);
        } finally {
            decode.drop("PC");
            pool.shutdownNow();
        }
    }

    @Test
    void dropForgetsThePeerAndEngineInfoListsPeers() {
        ObjectNode init = prefill.initialize("D");
        decode.connect("PD", prefillUrl, Endpoints.read(init.get("endpoint"), "e"), layout);
        ObjectNode info = JSON.createObjectNode();
        decode.describe(info);
        assertThat(info.path("peers").isArray()).isTrue();
        List<String> peers = new ArrayList<>();
        info.path("peers").forEach(p -> peers.add(p.asText()));
        assertThat(peers).contains("P", "PD").isSorted();
        assertThat(info.path("transports").toString()).isEqualTo("[\"tcp\"]");
        assertThat(info.path("block_size").asInt()).isEqualTo(BLOCK);
        assertThat(info.path("num_blocks").asInt()).isEqualTo(BLOCKS);
        assertThat(info.path("num_layers").asInt()).isEqualTo(layout.numLayers());
        assertThat(info.path("num_kv_heads").asInt()).isEqualTo(layout.numKvHeads());
        assertThat(info.path("head_dim").asInt()).isEqualTo(layout.headDim());
        assertThat(info.path("dtype").asText()).isEqualTo("f32");
        assertThat(info.toString()).doesNotContain(init.path("endpoint").path("token").asText());

        assertThat(decode.drop("PD")).isTrue();
        assertThat(decode.drop("PD")).isFalse();
        assertThat(decode.connectedPeers()).doesNotContain("PD").contains("P");
        assertBadRequest(request("PD", "s", new int[] {0}, 4), "migration_request.remote_engine_id");
    }

    /**
     * A pull interrupted while its batch is in flight must not hand its local blocks back while bytes of the batch
     * may still land in them (they could already belong to another sequence): the batch is cut off first.
     */
    @Test
    void anInterruptedPullCutsItsBatchOffBeforeFreeingTheBlocks() throws Exception {
        HangingTransport transport = new HangingTransport(tcp());
        MigrationService hung = service("DX", decodeModel, transport);
        try {
            connect(hung, "P", prefill);
            java.util.concurrent.atomic.AtomicReference<Throwable> outcome = new java.util.concurrent.atomic.AtomicReference<>();
            Thread puller = new Thread(() -> {
                try {
                    hung.pull(request("P", "s-int", new int[] {0, 1}, 20));
                    outcome.set(new AssertionError("the pull returned"));
                } catch (Throwable t) {
                    outcome.set(t);
                }
            });
            puller.start();
            await().atMost(Duration.ofSeconds(5)).until(() -> transport.batch != null);
            assertThat(decodeBlocks.freeCount()).isEqualTo(BLOCKS - 2);
            puller.interrupt();
            puller.join(5000);
            assertThat(outcome.get()).isInstanceOf(InterruptedException.class);
            assertThat(transport.batch.abortedBeforeRelease).as("batch cut off before the blocks went back").isTrue();
            assertThat(decodeBlocks.freeCount()).isEqualTo(BLOCKS);
        } finally {
            hung.close();
        }
    }

    /** A transport whose reads never finish on their own; await's timeout aborts them, as TCP's does. */
    static final class HangingTransport extends CountingTransport {
        volatile HangingBatch batch;

        HangingTransport(KvTransport delegate) {
            super(delegate, new AtomicInteger());
        }

        @Override
        public Connection connect(EndpointInfo remote, Duration timeout) throws TransferException {
            Connection real = super.connect(remote, timeout);
            return new Connection() {
                @Override
                public EndpointInfo remote() {
                    return real.remote();
                }

                @Override
                public io.distserve.kv.transfer.TransferFuture read(List<io.distserve.kv.transfer.ReadOp> ops) {
                    batch = new HangingBatch();
                    return batch;
                }

                @Override
                public void close() {
                    real.close();
                }
            };
        }
    }

    static final class HangingBatch implements io.distserve.kv.transfer.TransferFuture {
        final CompletableFuture<io.distserve.kv.transfer.TransferResult> done = new CompletableFuture<>();
        volatile boolean abortedBeforeRelease;

        @Override
        public boolean isDone() {
            return done.isDone();
        }

        @Override
        public io.distserve.kv.transfer.TransferResult await(Duration timeout)
                throws TransferException, InterruptedException {
            try {
                return done.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                // blocks still taken here means nobody released them before the abort
                abortedBeforeRelease = decodeBlocks.freeCount() == BLOCKS - 2;
                io.distserve.kv.transfer.TransferTimeoutException cut =
                        new io.distserve.kv.transfer.TransferTimeoutException("aborted after " + timeout);
                done.completeExceptionally(cut);
                throw cut;
            } catch (java.util.concurrent.ExecutionException e) {
                throw new TransferException("failed", e.getCause());
            }
        }

        @Override
        public java.util.concurrent.CompletionStage<io.distserve.kv.transfer.TransferResult> completion() {
            return done.copy();
        }
    }

    /** Counts connect calls: one per real connection. */
    static class CountingTransport implements KvTransport {
        private final KvTransport delegate;
        private final AtomicInteger connects;

        CountingTransport(KvTransport delegate, AtomicInteger connects) {
            this.delegate = delegate;
            this.connects = connects;
        }

        @Override
        public String name() {
            return delegate.name();
        }

        @Override
        public void register(MemoryRegion region) {
            delegate.register(region);
        }

        @Override
        public void start() throws TransferException {
            delegate.start();
        }

        @Override
        public EndpointInfo localEndpoint() {
            return delegate.localEndpoint();
        }

        @Override
        public Connection connect(EndpointInfo remote, Duration timeout) throws TransferException {
            connects.incrementAndGet();
            try {
                Thread.sleep(50); // widen the window in which concurrent callers could race
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return delegate.connect(remote, timeout);
        }

        @Override
        public void close() {
            delegate.close();
        }
    }
}
