package io.distserve.processors.disagg;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpServer;
import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportRegistry;
import io.distserve.processors.engine.EngineManagement;
import io.distserve.processors.engine.EngineNode;
import io.distserve.processors.engine.GenerateResponse;
import io.distserve.processors.engine.PrepareGeneration;
import io.distserve.processors.http.ErrorResponse;
import io.distserve.processors.metrics.LeaseGauges;
import io.distserve.processors.metrics.MigrationMetrics;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.Ingest;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.processors.openai.RequestKind;
import io.distserve.registry.NodeRole;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.camel.CamelContext;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;
import org.apache.camel.impl.DefaultCamelContext;
import org.apache.camel.support.DefaultExchange;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Prefill on engine A + Decode on engine B against Hybrid on engine H, through the engine's own route processors
 * (ingest -> prepare -> pullKv -> generateResponse, errors through errorResponse) on Camel exchanges, with the real
 * TCP migration and the decode engine's free_cache acknowledgement over HTTP. The test plays the proxy.
 */
class PdEquivalenceTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BLOCK = 16;
    private static final int BLOCKS = 256;

    @TempDir
    static Path dir;

    static CamelContext camel;
    static Node hybrid;
    static Node prefill;
    static Node decode;
    static HttpServer prefillHttp;
    static PrometheusMeterRegistry prefillRegistry;

    /** One engine node's processors, as EngineApplication binds them. */
    static final class Node implements AutoCloseable {
        final LoadedModel model;
        final EngineNode node;
        final MigrationService migration;
        final ControlEndpoints control;
        final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        final Processor ingestCompletion;
        final Processor ingestChat;
        final Processor prepare;
        final Processor pullKv;
        final Processor generate;
        final ErrorResponse errors;

        Node(Path modelDir, NodeRole role) throws Exception {
            this(modelDir, role, new PoolSetup() {
                @Override
                public KvPool pool(LoadedModel m) {
                    return KvPool.of(m.backend());
                }

                @Override
                public List<KvTransport> transports() {
                    return List.of(TransportRegistry.discover().create("tcp", TransportOptions.defaults()));
                }
            });
        }

        /** With the KV pool and the transports the setup gives (e.g. a device double over the CPU pool). */
        Node(Path modelDir, NodeRole role, PoolSetup setup) throws Exception {
            model = LoadedModel.load(modelDir, new EngineOptions("cpu", BLOCK, 0.8, BLOCKS, 1,
                    EngineConfig.defaults()));
            node = new EngineNode("tiny", role, model.tokenizer(), model.engine(), model.config().maxPositions(),
                    model.config().vocabSize(), Clock.systemUTC(), Duration.ofSeconds(60));
            migration = new MigrationService(node.engineId(), model.backend().kvLayout(),
                    model.engine().blockManager(), setup.pool(model).region(), setup.transports(),
                    model.config().vocabSize(), model.config().maxPositions(), MigrationService.Settings.defaults(),
                    null, JSON, new MigrationMetrics(registry));
            control = new ControlEndpoints(node, migration, node.leases(), JSON);
            OpenAiResponses responses = new OpenAiResponses(JSON);
            OpenAiRequestParser parser = new OpenAiRequestParser(JSON);
            RequestMetrics metrics = new RequestMetrics(registry);
            LeaseGauges.register(registry, node.leases());
            ingestCompletion = new Ingest(RequestKind.COMPLETION, parser);
            ingestChat = new Ingest(RequestKind.CHAT, parser);
            prepare = new PrepareGeneration(node);
            pullKv = new PullKv(migration);
            generate = new GenerateResponse(node, responses, metrics);
            errors = new ErrorResponse(responses, metrics);
            node.markServing();
        }

        /** The completions or chat route, non-streamed. */
        Reply post(RequestKind kind, String body) {
            return run(body, kind == RequestKind.CHAT ? ingestChat : ingestCompletion, prepare, pullKv, generate);
        }

        /** One control endpoint (a method of {@link ControlEndpoints}). */
        Reply control(String body, ControlCall call) {
            return run(body, call::call);
        }

        private Reply run(String body, Processor... steps) {
            Exchange exchange = new DefaultExchange(camel);
            exchange.getIn().setBody(body == null ? null : body.getBytes(StandardCharsets.UTF_8));
            try {
                try {
                    for (Processor p : steps) {
                        p.process(exchange);
                    }
                } catch (Exception e) {
                    exchange.setProperty(Exchange.EXCEPTION_CAUGHT, e);
                    errors.process(exchange);
                }
                return new Reply(exchange.getMessage().getHeader(Exchange.HTTP_RESPONSE_CODE, Integer.class),
                        JSON.readTree(exchange.getMessage().getBody(String.class)));
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }

        int freeBlocks() {
            return model.engine().blockManager().freeCount();
        }

        @Override
        public void close() {
            migration.close();
            node.close(); // leases, engine, tokenizer
            model.close();
        }
    }

    /** Where a test node's KV pool lives and which transports serve it. */
    interface PoolSetup {
        KvPool pool(LoadedModel model);

        List<KvTransport> transports();
    }

    interface ControlCall {
        void call(Exchange exchange) throws Exception;
    }

    record Reply(int status, JsonNode body) {
        String text() {
            JsonNode choice = body.path("choices").path(0);
            return choice.has("message") ? choice.path("message").path("content").asText() : choice.path("text").asText();
        }

        String errorParam() {
            return body.path("error").path("param").asText(null);
        }
    }

    @BeforeAll
    static void start() throws Exception {
        camel = new DefaultCamelContext();
        camel.start();
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 5, null).withThreads(1).writeTo(model);
        hybrid = new Node(model, NodeRole.Hybrid);
        prefill = new Node(model, NodeRole.Prefill);
        decode = new Node(model, NodeRole.Decode);

        prefillHttp = freeCacheServer(prefill);

        // The proxy's connection warmup: p2p_initialize on P, p2p_connect on D, as JSON.
        Reply init = prefill.control("{\"remote_engine_id\":\"" + decode.node.engineId() + "\"}",
                prefill.control::p2pInitialize);
        assertThat(init.status()).isEqualTo(200);
        ObjectNode connect = JSON.createObjectNode();
        connect.put("remote_engine_id", prefill.node.engineId());
        connect.put("remote_url", "http://127.0.0.1:" + prefillHttp.getAddress().getPort());
        connect.set("remote_endpoint", init.body().get("endpoint"));
        connect.set("remote_kv_layout", init.body().get("kv_layout"));
        Reply connected = decode.control(connect.toString(), decode.control::p2pConnect);
        assertThat(connected.status()).as(connected.body().toString()).isEqualTo(200);
    }

    @AfterAll
    static void stop() throws Exception {
        if (prefillHttp != null) {
            prefillHttp.stop(0);
        }
        for (Node n : new Node[] {decode, prefill, hybrid}) {
            if (n != null) {
                n.close();
            }
        }
        camel.stop();
    }

    @AfterEach
    void nothingLeaksOnAnyEngine() {
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            assertThat(prefill.node.leases().active()).as("prefill leases").isZero();
            assertThat(prefill.freeBlocks()).as("prefill free blocks").isEqualTo(BLOCKS);
            assertThat(decode.freeBlocks()).as("decode free blocks").isEqualTo(BLOCKS);
            assertThat(hybrid.freeBlocks()).as("hybrid free blocks").isEqualTo(BLOCKS);
        });
    }

    // ------------------------------------------------------------------------------------------------ helpers

    /** The prefill engine's free_cache over real HTTP: the decode engine acknowledges through it. */
    static HttpServer freeCacheServer(Node prefillNode) throws java.io.IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/distserve/free_cache", ex -> {
            Reply r = prefillNode.control(new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8),
                    prefillNode.control::freeCache);
            byte[] out = r.body().toString().getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(r.status(), out.length);
            ex.getResponseBody().write(out);
            ex.close();
        });
        server.start();
        return server;
    }

    static String idsPrompt(int length, int maxTokens, String extra) {
        StringBuilder ids = new StringBuilder();
        for (int i = 0; i < length; i++) {
            ids.append(i == 0 ? "" : ",").append(1 + (i * 37 + length) % 250);
        }
        return "{\"model\":\"tiny\",\"prompt\":[" + ids + "],\"max_tokens\":" + maxTokens
                + ",\"temperature\":0" + (extra == null ? "" : "," + extra) + "}";
    }

    static String chat(String content, int maxTokens) {
        ObjectNode body = JSON.createObjectNode();
        body.put("model", "tiny");
        ObjectNode m = body.putArray("messages").addObject();
        m.put("role", "user");
        m.put("content", content);
        body.put("max_tokens", maxTokens);
        body.put("temperature", 0);
        return body.toString();
    }

    /** The proxy's DistServe path: prefill on P, then the same request plus migration_request on D. */
    static Reply[] disaggregated(RequestKind kind, String body) throws Exception {
        Reply p = prefill.post(kind, body);
        assertThat(p.status()).as(p.body().toString()).isEqualTo(200);
        JsonNode d = p.body().path("distserve");
        ObjectNode mr = JSON.createObjectNode();
        mr.put("protocol", "tcp");
        mr.put("remote_engine_id", d.path("engine_id").asText());
        mr.put("remote_session_id", d.path("session_id").asText());
        mr.set("remote_block_ids", d.path("block_ids"));
        mr.put("remote_token_id", d.path("first_token_id").asInt());
        mr.set("prompt_token_ids", d.path("prompt_token_ids"));
        mr.put("cached_tokens", d.path("cached_tokens").asInt());
        ObjectNode second = (ObjectNode) JSON.readTree(body);
        second.set("migration_request", mr);
        Reply r = decode.post(kind, second.toString());
        return new Reply[] {p, r};
    }

    static void assertSameCompletion(Reply expected, Reply actual) {
        assertThat(actual.status()).as(actual.body().toString()).isEqualTo(200);
        assertThat(expected.status()).as(expected.body().toString()).isEqualTo(200);
        assertThat(actual.text()).isEqualTo(expected.text());
        assertThat(actual.body().path("choices").path(0).path("finish_reason"))
                .isEqualTo(expected.body().path("choices").path(0).path("finish_reason"));
        // the counts, not prompt_tokens_details: how much each engine had cached depends on what it served before
        for (String count : new String[] {"prompt_tokens", "completion_tokens", "total_tokens"}) {
            assertThat(actual.body().path("usage").path(count)).as(count)
                    .isEqualTo(expected.body().path("usage").path(count));
        }
        assertThat(actual.body().path("usage").path("prompt_tokens_details").path("cached_tokens").isInt()).isTrue();
        assertThat(actual.body().path("object")).isEqualTo(expected.body().path("object"));
        assertThat(actual.body().has("distserve")).isFalse();
    }

    // ------------------------------------------------------------------------------------------------ equivalence

    static String ids(int[] ids, int maxTokens) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; i++) {
            sb.append(i == 0 ? "" : ",").append(ids[i]);
        }
        return "{\"model\":\"tiny\",\"prompt\":[" + sb + "],\"max_tokens\":" + maxTokens
                + ",\"temperature\":0,\"ignore_eos\":true}";
    }

    static double cachedBlocksPulled(Node n) {
        return n.registry.find("kv.migration.cached.blocks").counters().stream()
                .mapToDouble(io.micrometer.core.instrument.Counter::count).sum();
    }

    /**
     * A conversation's next turn: the prefill engine computes only the new tokens, the decode engine pulls only
     * the blocks its own prefix cache lacks, the client hears the prefill's reuse in usage, and the text is still
     * Hybrid's.
     */
    @Test
    void theNextTurnPullsOnlyTheBlocksTheDecodeEngineLacks() throws Exception {
        int[] turn1 = new int[40];
        for (int i = 0; i < turn1.length; i++) {
            turn1[i] = 1 + (i * 41 + 3) % 250;
        }
        Reply[] first = disaggregated(RequestKind.COMPLETION, ids(turn1, 12));
        assertSameCompletion(hybrid.post(RequestKind.COMPLETION, ids(turn1, 12)), first[1]);
        assertThat(first[1].body().path("usage").path("prompt_tokens_details").path("cached_tokens").asInt())
                .isZero();
        int[] turn2 = java.util.Arrays.copyOf(turn1, 70);
        for (int i = 40; i < 70; i++) {
            turn2[i] = 1 + (i * 13 + 5) % 250;
        }
        double before = cachedBlocksPulled(decode);
        Reply[] second = disaggregated(RequestKind.COMPLETION, ids(turn2, 12));
        assertSameCompletion(hybrid.post(RequestKind.COMPLETION, ids(turn2, 12)), second[1]);
        // blocks 0 and 1 (tokens 0..31) were turn 1's prompt on both engines; block 2 held turn 1's answer
        assertThat(second[0].body().path("distserve").path("cached_tokens").asInt()).isEqualTo(32);
        assertThat(second[1].body().path("usage").path("prompt_tokens_details").path("cached_tokens").asInt())
                .isEqualTo(32);
        assertThat(cachedBlocksPulled(decode) - before).as("blocks not pulled").isEqualTo(2);
    }

    @ParameterizedTest(name = "{0}-token prompt")
    @ValueSource(ints = {5, 15, 16, 17, 40})
    void completionsPrefillPlusDecodeEqualsHybrid(int promptTokens) throws Exception {
        String body = idsPrompt(promptTokens, 12, "\"ignore_eos\":true");
        Reply h = hybrid.post(RequestKind.COMPLETION, body);
        Reply[] pd = disaggregated(RequestKind.COMPLETION, body);
        assertSameCompletion(h, pd[1]);
        assertThat(h.body().path("usage").path("prompt_tokens").asInt()).isEqualTo(promptTokens);
        assertThat(h.body().path("usage").path("completion_tokens").asInt()).isEqualTo(12);

        // The prefill's answer: one token, the hand-off, the lease (already acknowledged by now or soon).
        Reply p = pd[0];
        assertThat(p.body().path("usage").path("completion_tokens").asInt()).isEqualTo(1);
        JsonNode d = p.body().path("distserve");
        assertThat(d.path("engine_id").asText()).isEqualTo(prefill.node.engineId());
        assertThat(d.path("session_id").asText()).isEqualTo(p.body().path("id").asText());
        assertThat(d.path("block_ids").size()).isEqualTo((promptTokens + BLOCK - 1) / BLOCK);
        assertThat(d.path("prompt_token_ids")).isEqualTo(JSON.readTree(body).path("prompt"));
        assertThat(d.path("first_token_id").isInt()).isTrue();
    }

    /**
     * Not vacuous: the decode engine continues from the pulled KV, not from a recomputation. Zeroing the leased
     * blocks on the prefill engine before the pull changes the decode's output; the acknowledgement ends the lease.
     */
    @Test
    void theDecodeEngineContinuesFromThePulledKv() throws Exception {
        // A prompt of its own: the zeroed blocks are in the prefill engine's prefix cache afterwards (nothing but
        // this test writes a cached block), and no other test may find them there.
        String body = idsPrompt(40, 12, "\"ignore_eos\":true").replace("\"prompt\":[41,", "\"prompt\":[7,");
        Reply h = hybrid.post(RequestKind.COMPLETION, body);
        long freedBefore = prefill.node.leases().freedCount();

        Reply p = prefill.post(RequestKind.COMPLETION, body);
        JsonNode d = p.body().path("distserve");
        java.nio.ByteBuffer pool = prefill.model.backend().hostKvChunks().get(0);
        long bpb = prefill.model.backend().kvLayout().bytesPerBlock();
        for (JsonNode b : d.path("block_ids")) {
            for (long i = 0; i < bpb; i++) {
                pool.put((int) (b.asInt() * bpb + i), (byte) 0);
            }
        }
        ObjectNode second = (ObjectNode) JSON.readTree(body);
        second.set("migration_request", JSON.readTree(mr(d, null, null)));
        Reply r = decode.post(RequestKind.COMPLETION, second.toString());
        assertThat(r.status()).isEqualTo(200);
        assertThat(r.body().path("usage")).isEqualTo(h.body().path("usage"));
        assertThat(r.text()).as("decoding over a zeroed KV cache").isNotEqualTo(h.text());
        await().atMost(Duration.ofSeconds(5)).until(() -> prefill.node.leases().freedCount() == freedBefore + 1);
    }

    @Test
    void maxTokensOneEndsOnTheDecodeSideAtTheMigratedToken() throws Exception {
        String body = idsPrompt(20, 1, "\"ignore_eos\":true");
        Reply h = hybrid.post(RequestKind.COMPLETION, body);
        Reply[] pd = disaggregated(RequestKind.COMPLETION, body);
        assertSameCompletion(h, pd[1]);
        assertThat(pd[1].body().path("choices").path(0).path("finish_reason").asText()).isEqualTo("length");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"Hi", "Tell me about the city of Shanghai.",
            "Shanghai is a city that has grown from a fishing village into one of the largest ports of the world, "
                    + "and its skyline is known everywhere."})
    void chatPrefillPlusDecodeEqualsHybrid(String content) throws Exception {
        String body = chat(content, 10);
        Reply h = hybrid.post(RequestKind.CHAT, body);
        Reply[] pd = disaggregated(RequestKind.CHAT, body);
        assertSameCompletion(h, pd[1]);
        assertThat(pd[1].body().path("choices").path(0).path("message").path("role").asText()).isEqualTo("assistant");
    }

    @Test
    void chatPromptsSpanLessThanExactlyAndMoreThanOneBlock() throws Exception {
        // The chat template adds ~10 tokens: find contents whose prompts are < 16, == 16 and > 16 tokens.
        List<Integer> lengths = new ArrayList<>();
        for (String content : new String[] {"a", "the cat", "Tell me about the city of Shanghai."}) {
            lengths.add(hybrid.post(RequestKind.CHAT, chat(content, 1)).body().path("usage").path("prompt_tokens")
                    .asInt());
        }
        assertThat(lengths.get(0)).isLessThan(BLOCK);
        assertThat(lengths.get(2)).isGreaterThan(BLOCK);
        String exact = null;
        for (int n = 1; n < 20 && exact == null; n++) {
            String content = "x".repeat(n);
            if (hybrid.post(RequestKind.CHAT, chat(content, 1)).body().path("usage").path("prompt_tokens").asInt()
                    == BLOCK) {
                exact = content;
            }
        }
        assertThat(exact).as("a chat prompt of exactly one block").isNotNull();
        String body = chat(exact, 8);
        Reply h = hybrid.post(RequestKind.CHAT, body);
        Reply[] pd = disaggregated(RequestKind.CHAT, body);
        assertSameCompletion(h, pd[1]);
        assertThat(pd[0].body().path("distserve").path("block_ids").size()).isEqualTo(1);
    }

    @Test
    void aDecodeEngineWithoutMigrationRequestDoesANormalPrefill() {
        String body = idsPrompt(23, 9, "\"ignore_eos\":true");
        Reply h = hybrid.post(RequestKind.COMPLETION, body);
        Reply d = decode.post(RequestKind.COMPLETION, body);
        assertSameCompletion(h, d);
        Reply c = decode.post(RequestKind.CHAT, chat("Hello there", 6));
        assertSameCompletion(hybrid.post(RequestKind.CHAT, chat("Hello there", 6)), c);
    }

    // ------------------------------------------------------------------------------------------------ refusals

    @Test
    void migrationRequestToAHybridOrPrefillEngineIs400() throws Exception {
        ObjectNode body = (ObjectNode) JSON.readTree(idsPrompt(10, 4, null));
        ObjectNode mr = body.putObject("migration_request");
        mr.put("protocol", "tcp");
        mr.put("remote_engine_id", prefill.node.engineId());
        mr.put("remote_session_id", "x");
        mr.putArray("remote_block_ids").add(0);
        mr.put("remote_token_id", 1);
        mr.set("prompt_token_ids", body.get("prompt"));
        for (Node n : new Node[] {hybrid, prefill}) {
            Reply r = n.post(RequestKind.COMPLETION, body.toString());
            assertThat(r.status()).isEqualTo(400);
            assertThat(r.errorParam()).isEqualTo("migration_request");
        }
        assertThat(prefill.node.leases().active()).isZero();
    }

    @Test
    void aPrefillEngineRefusesToStream() {
        Reply r = prefill.post(RequestKind.COMPLETION, idsPrompt(10, 4, "\"stream\":true"));
        assertThat(r.status()).isEqualTo(400);
        assertThat(r.errorParam()).isEqualTo("stream");
        Reply c = prefill.post(RequestKind.CHAT, chat("hi", 4).replace("}", ",\"stream\":true}"));
        assertThat(c.status()).isEqualTo(400);
    }

    @Test
    void freeCacheChecksTheEngineIdAndReportsUnknownSessions() throws Exception {
        Reply wrong = prefill.control("{\"remote_engine_id\":\"engine-someone-else\",\"remote_session_id\":\"s\"}",
                prefill.control::freeCache);
        assertThat(wrong.status()).isEqualTo(400);
        assertThat(wrong.errorParam()).isEqualTo("remote_engine_id");

        Reply unknown = prefill.control("{\"remote_engine_id\":\"" + prefill.node.engineId()
                + "\",\"remote_session_id\":\"cmpl-nope\"}", prefill.control::freeCache);
        assertThat(unknown.status()).isEqualTo(200);
        assertThat(unknown.body().path("freed").asBoolean(true)).isFalse();

        for (String bad : new String[] {null, "", "[]", "{\"remote_engine_id\":5}", "{not json",
                "{\"remote_engine_id\":\"" + prefill.node.engineId() + "\"}"}) {
            Reply r = prefill.control(bad, prefill.control::freeCache);
            assertThat(r.status()).as(String.valueOf(bad)).isEqualTo(400);
        }
    }

    /**
     * A prefill whose decode never comes: the lease holds the blocks (visible in metrics and JMX) until free_cache.
     */
    @Test
    void aLeaseIsVisibleInMetricsAndJmxUntilFreed() throws Exception {
        EngineManagement jmx = new EngineManagement(prefill.node);
        long freedBefore = prefill.node.leases().freedCount();
        Reply p = prefill.post(RequestKind.COMPLETION, idsPrompt(40, 50, null));
        assertThat(p.status()).isEqualTo(200);
        assertThat(p.body().path("usage").path("completion_tokens").asInt()).as("max_tokens forced to 1")
                .isEqualTo(1);
        assertThat(prefill.node.leases().active()).isEqualTo(1);
        assertThat(prefill.freeBlocks()).isEqualTo(BLOCKS - 3);
        assertThat(jmx.getKvLeases()).isEqualTo(1);
        assertThat(jmx.getKvLeasedBlocks()).isEqualTo(3);
        String scrape = prefill.registry.scrape();
        assertThat(scrape).contains("distserve_prefill_leases 1.0", "distserve_prefill_leased_blocks 3.0");
        Reply info = prefill.control(null, prefill.control::engineInfo);
        assertThat(info.body().path("leases").asInt()).isEqualTo(1);
        assertThat(info.body().path("leased_blocks").asInt()).isEqualTo(3);

        String session = p.body().path("distserve").path("session_id").asText();
        Reply freed = prefill.control("{\"remote_engine_id\":\"" + prefill.node.engineId()
                + "\",\"remote_session_id\":\"" + session + "\"}", prefill.control::freeCache);
        assertThat(freed.body().path("freed").asBoolean()).isTrue();
        assertThat(jmx.getKvLeases()).isZero();
        assertThat(prefill.node.leases().freedCount()).isEqualTo(freedBefore + 1);
        assertThat(prefill.registry.scrape()).contains("distserve_prefill_leases 0.0",
                "distserve_prefill_leases_freed_total " + (freedBefore + 1) + ".0");
    }

    @Test
    void engineInfoDescribesTheLayoutAndThePeers() {
        Reply d = decode.control(null, decode.control::engineInfo);
        assertThat(d.status()).isEqualTo(200);
        JsonNode info = d.body();
        assertThat(info.path("engine_id").asText()).isEqualTo(decode.node.engineId());
        assertThat(info.path("model").asText()).isEqualTo("tiny");
        assertThat(info.path("role").asText()).isEqualTo("Decode");
        assertThat(info.path("dtype").asText()).isEqualTo("f32");
        assertThat(info.path("num_layers").asInt()).isEqualTo(decode.model.config().numLayers());
        assertThat(info.path("num_kv_heads").asInt()).isPositive();
        assertThat(info.path("head_dim").asInt()).isPositive();
        assertThat(info.path("block_size").asInt()).isEqualTo(BLOCK);
        assertThat(info.path("num_blocks").asInt()).isEqualTo(BLOCKS);
        assertThat(info.path("layout").asText()).isEqualTo(KvLayouts.LAYOUT_NAME);
        assertThat(info.path("transports")).containsExactly(JSON.getNodeFactory().textNode("tcp"));
        assertThat(info.path("peers")).containsExactly(JSON.getNodeFactory().textNode(prefill.node.engineId()));
        assertThat(prefill.control(null, prefill.control::engineInfo).body().path("peers")).isEmpty();
    }

    @Test
    void hostileMigrationRequestsAre400sAndTheDecodeEngineKeepsServing() throws Exception {
        String body = idsPrompt(40, 6, "\"ignore_eos\":true");
        // A real prefill, so that the hostile variants name a real engine and real blocks.
        Reply p = prefill.post(RequestKind.COMPLETION, body);
        JsonNode d = p.body().path("distserve");
        ArrayNode realBlocks = (ArrayNode) d.path("block_ids");
        List<String[]> variants = List.of(
                new String[] {"\"not an object\"", "migration_request"},
                new String[] {"{}", "migration_request.protocol"},
                new String[] {mr(d, "remote_block_ids", "[0,1,99999]"), "migration_request.remote_block_ids"},
                new String[] {mr(d, "remote_block_ids", "[0,1,2147483647]"), "migration_request.remote_block_ids"},
                new String[] {mr(d, "remote_block_ids", "[0,1,-1]"), "migration_request.remote_block_ids"},
                new String[] {mr(d, "remote_block_ids", "[0,0,0]"), "migration_request.remote_block_ids"},
                new String[] {mr(d, "remote_block_ids", "[0]"), "migration_request.remote_block_ids"},
                new String[] {mr(d, "remote_block_ids", "[0,1,2,3,4,5,6,7,8,9,10]"),
                        "migration_request.remote_block_ids"},
                new String[] {mr(d, "remote_block_ids", "[]"), "migration_request.remote_block_ids"},
                new String[] {mr(d, "remote_token_id", "999999"), "migration_request.remote_token_id"},
                new String[] {mr(d, "remote_token_id", "-3"), "migration_request.remote_token_id"},
                new String[] {mr(d, "remote_engine_id", "\"engine-unknown\""), "migration_request.remote_engine_id"},
                new String[] {mr(d, "protocol", "\"rdma\""), "migration_request.protocol"},
                new String[] {mr(d, "prompt_token_ids", "[1,2,3]"), "migration_request.prompt_token_ids"},
                new String[] {mr(d, "prompt_token_ids", "[1.5]"), "migration_request.prompt_token_ids"});
        for (String[] v : variants) {
            ObjectNode hostile = (ObjectNode) JSON.readTree(body);
            hostile.set("migration_request", JSON.readTree(v[0]));
            Reply r = decode.post(RequestKind.COMPLETION, hostile.toString());
            assertThat(r.status()).as(v[0]).isEqualTo(400);
            assertThat(r.errorParam()).as(v[0]).isEqualTo(v[1]);
            assertThat(decode.freeBlocks()).as(v[0]).isEqualTo(BLOCKS);
            assertThat(prefill.node.leases().active()).as("a rejected migration leaves the lease").isEqualTo(1);
        }
        assertThat(realBlocks.size()).isEqualTo(3);

        // The decode engine still serves: the real migration of that very prefill, and a normal request.
        ObjectNode good = (ObjectNode) JSON.readTree(body);
        good.set("migration_request", JSON.readTree(mr(d, null, null)));
        assertSameCompletion(hybrid.post(RequestKind.COMPLETION, body), decode.post(RequestKind.COMPLETION,
                good.toString()));
        assertThat(decode.post(RequestKind.COMPLETION, idsPrompt(7, 3, null)).status()).isEqualTo(200);
    }

    /**
     * A lease that ended before the decode engine pulled (expired, or freed): its blocks may already hold another
     * sequence's KV, so the migration fails instead of decoding from it, and nothing leaks.
     */
    @Test
    void aMigrationOfALeaseThatHasEndedFailsInsteadOfDecodingStaleKv() throws Exception {
        String body = idsPrompt(30, 6, "\"ignore_eos\":true");
        Reply p = prefill.post(RequestKind.COMPLETION, body);
        JsonNode d = p.body().path("distserve");
        assertThat(prefill.node.leases().free(d.path("session_id").asText())).isTrue(); // as expiry would
        // another prefill runs meanwhile: its lease must stay untouched
        Reply other = prefill.post(RequestKind.COMPLETION, idsPrompt(31, 1, null));
        ObjectNode second = (ObjectNode) JSON.readTree(body);
        second.set("migration_request", JSON.readTree(mr(d, null, null)));
        Reply r = decode.post(RequestKind.COMPLETION, second.toString());
        assertThat(r.status()).as(r.body().toString()).isEqualTo(503);
        assertThat(r.body().path("error").path("code").asText()).isEqualTo("kv_lease_gone");
        assertThat(decode.freeBlocks()).isEqualTo(BLOCKS);
        assertThat(prefill.node.leases().active()).as("the other prefill's lease is untouched").isEqualTo(1);
        prefill.node.leases().free(other.body().path("distserve").path("session_id").asText());
        assertThat(decode.post(RequestKind.COMPLETION, idsPrompt(7, 3, null)).status()).isEqualTo(200);
    }

    /** The migration_request a proxy would build from the hand-off, with one field replaced by raw JSON. */
    static String mr(JsonNode d, String field, String raw) throws Exception {
        ObjectNode mr = JSON.createObjectNode();
        mr.put("protocol", "tcp");
        mr.put("remote_engine_id", d.path("engine_id").asText());
        mr.put("remote_session_id", d.path("session_id").asText());
        mr.set("remote_block_ids", d.path("block_ids"));
        mr.put("remote_token_id", d.path("first_token_id").asInt());
        mr.set("prompt_token_ids", d.path("prompt_token_ids"));
        mr.put("cached_tokens", d.path("cached_tokens").asInt());
        if (field != null) {
            mr.set(field, JSON.readTree(raw));
        }
        return mr.toString();
    }

}
