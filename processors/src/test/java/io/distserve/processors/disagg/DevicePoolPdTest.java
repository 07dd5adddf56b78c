package io.distserve.processors.disagg;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpServer;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.HostGpuDevice;
import io.distserve.kv.nvlink.NvlinkTransport;
import io.distserve.kv.tcp.TcpTransport;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.processors.disagg.PdEquivalenceTest.Node;
import io.distserve.processors.disagg.PdEquivalenceTest.PoolSetup;
import io.distserve.processors.disagg.PdEquivalenceTest.Reply;
import io.distserve.processors.openai.RequestKind;
import io.distserve.registry.NodeRole;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.camel.impl.DefaultCamelContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Engines whose KV pools are GPU memory, with no GPU: the prefill and decode engines' pools sit behind the device
 * double (whose copies are asynchronous, with random delays), served over nvlink (CUDA IPC emulated between two
 * "processes" of one host) and over tcp staged through pinned buffers, as a CUDA engine's are. The whole engine
 * path runs (ingest, prepare, pullKv, generate; p2p_initialize / p2p_connect as JSON; the acknowledgement over HTTP)
 * and must give Hybrid's tokens on either transport. Hostile endpoints get a 400, never a crash or a leak.
 */
class DevicePoolPdTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String HOST = "boot:device-pool-test";

    @TempDir
    static Path dir;

    static Node hybrid;
    static Node prefill;
    static Node decode;
    static HttpServer prefillHttp;
    static final List<HostGpuDevice> devices = new ArrayList<>();

    /** A "GPU" pool over the CPU engine's KV chunk; transports nvlink (as process {@code pid}) and staged tcp. */
    static PoolSetup onDevice(long pid) {
        HostGpuDevice device = SHARED_HOST.device("0000:19:00.0", 20);
        devices.add(device);
        return new PoolSetup() {
            @Override
            public KvPool pool(LoadedModel m) {
                List<ByteBuffer> chunks = m.backend().hostKvChunks();
                assertThat(chunks).hasSize(1);
                device.bind();
                return KvPool.of(new DeviceRegion(device, device.wrap(chunks.get(0))));
            }

            @Override
            public List<KvTransport> transports() {
                TransportOptions o = TransportOptions.defaults();
                TransportOptions staged = new TransportOptions(o.bindHost(), o.port(), o.advertisedHost(),
                        o.streamsPerConnection(), o.maxTransferBytes(), o.socketBufferBytes(), o.handshakeTimeout(),
                        Map.of("tcp.stagingChunkBytes", "8192", "tcp.stagingBuffers", "3"));
                return List.of(new NvlinkTransport(o, HOST, pid), new TcpTransport(staged));
            }
        };
    }

    static final HostGpuDevice.Host SHARED_HOST = new HostGpuDevice.Host();

    @BeforeAll
    static void start() throws Exception {
        PdEquivalenceTest.camel = new DefaultCamelContext();
        PdEquivalenceTest.camel.start();
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 5, null).withThreads(1).writeTo(model);
        hybrid = new Node(model, NodeRole.Hybrid);
        prefill = new Node(model, NodeRole.Prefill, onDevice(1001));
        decode = new Node(model, NodeRole.Decode, onDevice(1002));
        prefillHttp = PdEquivalenceTest.freeCacheServer(prefill);
        for (String protocol : List.of("nvlink", "tcp")) {
            Reply connected = connect(protocol, null);
            assertThat(connected.status()).as(connected.body().toString()).isEqualTo(200);
        }
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
        PdEquivalenceTest.camel.stop();
        for (HostGpuDevice d : devices) {
            assertThat(d.livePinnedBuffers()).as("pinned buffers left").isZero();
            assertThat(d.liveImports()).as("IPC mappings left").isZero();
        }
    }

    @AfterEach
    void nothingLeaks() {
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            assertThat(prefill.node.leases().active()).as("prefill leases").isZero();
            assertThat(prefill.freeBlocks()).isEqualTo(prefill.model.backend().kvLayout().numBlocks());
            assertThat(decode.freeBlocks()).isEqualTo(decode.model.backend().kvLayout().numBlocks());
        });
    }

    /** p2p_initialize(protocol) on P, then p2p_connect on D, with the endpoint edited by {@code edit}. */
    static Reply connect(String protocol, java.util.function.Consumer<ObjectNode> edit) {
        Reply init = prefill.control("{\"remote_engine_id\":\"" + decode.node.engineId() + "\",\"protocol\":\""
                + protocol + "\"}", prefill.control::p2pInitialize);
        assertThat(init.status()).as(init.body().toString()).isEqualTo(200);
        assertThat(init.body().path("endpoint").path("transport").asText()).isEqualTo(protocol);
        ObjectNode connect = JSON.createObjectNode();
        connect.put("remote_engine_id", prefill.node.engineId());
        connect.put("remote_url", "http://127.0.0.1:" + prefillHttp.getAddress().getPort());
        ObjectNode endpoint = init.body().get("endpoint").deepCopy();
        if (edit != null) {
            edit.accept(endpoint);
        }
        connect.set("remote_endpoint", endpoint);
        connect.set("remote_kv_layout", init.body().get("kv_layout"));
        return decode.control(connect.toString(), decode.control::p2pConnect);
    }

    static Reply disaggregated(RequestKind kind, String body, String protocol) throws Exception {
        Reply p = prefill.post(kind, body);
        assertThat(p.status()).as(p.body().toString()).isEqualTo(200);
        ObjectNode mr = (ObjectNode) JSON.readTree(PdEquivalenceTest.mr(p.body().path("distserve"), null, null));
        mr.put("protocol", protocol);
        ObjectNode second = (ObjectNode) JSON.readTree(body);
        second.set("migration_request", mr);
        return decode.post(kind, second.toString());
    }

    @ParameterizedTest(name = "{0}, {1}-token prompt")
    @CsvSource({"nvlink,5", "nvlink,16", "nvlink,17", "nvlink,63", "tcp,5", "tcp,16", "tcp,17", "tcp,63"})
    void prefillPlusDecodeEqualsHybridOverEitherTransport(String protocol, int promptTokens) throws Exception {
        String body = PdEquivalenceTest.idsPrompt(promptTokens, 12, "\"ignore_eos\":true");
        Reply h = hybrid.post(RequestKind.COMPLETION, body);
        Reply d = disaggregated(RequestKind.COMPLETION, body, protocol);
        PdEquivalenceTest.assertSameCompletion(h, d);
    }

    @Test
    void chatOverNvlinkEqualsHybrid() throws Exception {
        String body = PdEquivalenceTest.chat("Tell me about the sea, the wind and the long road home.", 10);
        PdEquivalenceTest.assertSameCompletion(hybrid.post(RequestKind.CHAT, body),
                disaggregated(RequestKind.CHAT, body, "NVLink"));
    }

    @Test
    void engineInfoListsTransportsTheGpuAndPeersByTransport() {
        Reply info = decode.control(null, decode.control::engineInfo);
        JsonNode b = info.body();
        assertThat(b.path("transports").toString()).isEqualTo("[\"nvlink\",\"tcp\"]");
        assertThat(b.path("gpu").asText()).isEqualTo("0000:19:00.0");
        assertThat(b.path("host_id").asText()).isNotBlank();
        assertThat(b.path("peer_transports").path(prefill.node.engineId()).toString())
                .isEqualTo("[\"nvlink\",\"tcp\"]");
        Reply cpu = hybrid.control(null, hybrid.control::engineInfo);
        assertThat(cpu.body().path("transports").toString()).isEqualTo("[\"tcp\"]");
        assertThat(cpu.body().has("gpu")).isFalse();
    }

    @Test
    void hostileNvlinkEndpointsAre400sAndLeaveNothingMapped() {
        int mapped = devices.get(1).liveImports();
        Map<String, String> cases = new HashMap<>();
        cases.put("host_id", "boot:some-other-host");
        cases.put("ipc_handle", "cd".repeat(64));
        for (Map.Entry<String, String> c : cases.entrySet()) {
            Reply r = connect("nvlink", e -> ((ObjectNode) e.path("attributes")).put(c.getKey(), c.getValue()));
            assertThat(r.status()).as(r.body().toString()).isEqualTo(400);
            assertThat(r.body().path("error").path("code").asText()).isEqualTo("endpoint_refused");
        }
        Reply malformed = connect("nvlink", e -> ((ObjectNode) e.path("attributes")).put("ipc_handle", "not hex"));
        assertThat(malformed.status()).isEqualTo(400);
        assertThat(malformed.errorParam()).isEqualTo("remote_endpoint");
        assertThat(malformed.body().path("error").path("message").asText()).contains("ipc_handle");
        Reply tooBig = connect("nvlink", e -> {
            long size = e.path("region_size").asLong() * 2;
            e.put("region_size", size);
            e.putArray("segment_sizes").add(size);
        });
        assertThat(tooBig.status()).isEqualTo(400);
        assertThat(tooBig.body().path("error").path("message").asText()).contains("allocation holds");
        assertThat(devices.get(1).liveImports()).isEqualTo(mapped);
        Reply unknown = prefill.control("{\"remote_engine_id\":\"D\",\"protocol\":\"rdma\"}",
                prefill.control::p2pInitialize);
        assertThat(unknown.status()).isEqualTo(400);
        assertThat(unknown.body().path("error").path("message").asText()).contains("[nvlink, tcp]");
        // the real connections are untouched
        assertThat(decode.migration.connectedTransports().get(prefill.node.engineId()))
                .containsExactly("nvlink", "tcp");
    }

    @Test
    void migrationsAreCountedByTransport() throws Exception {
        String body = PdEquivalenceTest.idsPrompt(33, 2, "\"ignore_eos\":true");
        disaggregated(RequestKind.COMPLETION, body, "nvlink");
        disaggregated(RequestKind.COMPLETION, body, "tcp");
        String scrape = decode.registry.scrape();
        long bytes = 3L * decode.model.backend().kvLayout().bytesPerBlock();
        assertThat(scrape).containsPattern("kv_migration_bytes_total\\{transport=\"nvlink\"\\} [1-9]")
                .containsPattern("kv_migration_bytes_total\\{transport=\"tcp\"\\} [1-9]")
                .contains("kv_migration_seconds_bucket{transport=\"nvlink\"")
                .contains("kv_migration_failures_total{transport=\"tcp\"} 0.0");
        assertThat(bytes).isPositive();
    }
}
