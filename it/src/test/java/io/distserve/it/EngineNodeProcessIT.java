package io.distserve.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * One engine node as a real child process ({@code java -jar distserve.jar serve api_server ...} with
 * {@code --api-keys}, {@code --max-batch-size 1 --max-queue 1}), driven by real clients: the official OpenAI Node
 * SDK (completions and chat, whole and streamed) and raw HTTP; the queue flag gives 429; SIGTERM stops it cleanly.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class EngineNodeProcessIT {

    static final String KEY = "sk-it-key";
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path dir;

    static ServerProcess server;
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    @BeforeAll
    static void start() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 7, null).withThreads(1).writeTo(model);
        server = ServerProcess.apiServer("engine-node", model, "--api-keys", KEY, "--max-batch-size", "1",
                "--max-queue", "1", "--cache-max-entry-count", "0.05", "--log-level", "INFO");
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    static HttpResponse<String> post(String path, String body) throws IOException, InterruptedException {
        return HTTP.send(HttpRequest.newBuilder(URI.create(server.base + path)).timeout(Duration.ofSeconds(60))
                .header("Authorization", "Bearer " + KEY).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    // ------------------------------------------------------------------------------------------------ Node SDK

    /** node and the npm-installed SDK: missing fails under CI (CI=true), skips elsewhere. */
    static Path nodeClient() throws Exception {
        Path itDir = Path.of(System.getProperty("distserve.it.dir", "."));
        Path script = itDir.resolve("src/test/node/openai_client.mjs");
        String problem = null;
        try {
            Process p = new ProcessBuilder("node", "--version").redirectErrorStream(true).start();
            String version = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (!p.waitFor(20, TimeUnit.SECONDS) || p.exitValue() != 0) {
                problem = "'node --version' failed: " + version;
            }
        } catch (IOException e) {
            problem = "node is not installed (" + e.getMessage() + ")";
        }
        if (problem == null && !Files.isRegularFile(itDir.resolve("node_modules/openai/package.json"))) {
            problem = "the OpenAI Node SDK is not installed in " + itDir.resolve("node_modules")
                    + ": run (cd it && npm ci --no-audit --no-fund)";
        }
        if (problem != null) {
            if ("true".equalsIgnoreCase(System.getenv("CI"))) {
                throw new AssertionError("OpenAI Node SDK client test cannot run under CI: " + problem);
            }
            Assumptions.abort("skipped: " + problem);
        }
        return script;
    }

    /**
     * Runs it/src/test/node/openai_client.mjs (the official OpenAI Node SDK) against {@code base}/v1 with that key
     * and the test model; returns what it printed (one JSON object). Its stderr goes to {@code logName}.stderr.
     */
    static JsonNode runOpenAiNodeClient(String base, String key, String logName) throws Exception {
        Path script = nodeClient();
        ProcessBuilder pb = new ProcessBuilder("node", script.getFileName().toString())
                .directory(script.getParent().toFile());
        Map<String, String> env = pb.environment();
        env.put("DISTSERVE_BASE_URL", base + "/v1");
        env.put("DISTSERVE_API_KEY", key);
        env.put("DISTSERVE_MODEL", "tiny");
        Path err = ServerProcess.logs().resolve(logName + ".stderr");
        pb.redirectError(err.toFile());
        Process node = pb.start();
        String stdout = new String(node.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        boolean exited = node.waitFor(120, TimeUnit.SECONDS);
        if (!exited) {
            node.destroyForcibly();
            node.waitFor(10, TimeUnit.SECONDS);
        }
        assertThat(exited).as("node client finished").isTrue();
        assertThat(node.exitValue()).as("node exit code; stderr:\n%s\nstdout:\n%s", Files.readString(err), stdout)
                .isZero();
        System.out.println("[" + logName + "] " + stdout.strip());
        return JSON.readTree(stdout);
    }

    @Test
    @Order(1)
    void openAiNodeSdkCompletionsAndChatWholeAndStreamed() throws Exception {
        JsonNode out = runOpenAiNodeClient(server.base, KEY, "openai-node-client");

        assertThat(out.path("models")).extracting(JsonNode::asText).containsExactly("tiny");

        // what our server says for the very same requests, over plain HTTP
        JsonNode refCompletion = JSON.readTree(post("/v1/completions",
                "{\"model\":\"tiny\",\"prompt\":\"Shanghai is a city that \",\"max_tokens\":24,\"temperature\":0,"
                        + "\"ignore_eos\":true}").body());
        JsonNode refChat = JSON.readTree(post("/v1/chat/completions",
                "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Write a haiku about the sea.\"}],"
                        + "\"max_tokens\":24,\"temperature\":0,\"ignore_eos\":true}").body());

        JsonNode completion = out.path("completion");
        assertThat(completion.path("id").asText()).startsWith("cmpl-");
        assertThat(completion.path("object").asText()).isEqualTo("text_completion");
        assertThat(completion.path("text").asText()).isNotEmpty()
                .isEqualTo(refCompletion.path("choices").get(0).path("text").asText());
        assertThat(completion.path("finishReason").asText()).isEqualTo("length");
        assertThat(completion.path("usage")).isEqualTo(refCompletion.path("usage"));
        assertThat(completion.path("usage").path("completion_tokens").asInt()).isEqualTo(24);

        JsonNode completionStream = out.path("completionStream");
        assertThat(completionStream.path("text").asText()).isEqualTo(completion.path("text").asText());
        assertThat(completionStream.path("usage")).isEqualTo(completion.path("usage"));
        assertThat(completionStream.path("finishReason").asText()).isEqualTo("length");
        assertThat(completionStream.path("chunks").asInt()).isGreaterThan(2);

        JsonNode chat = out.path("chat");
        assertThat(chat.path("id").asText()).startsWith("chatcmpl-");
        assertThat(chat.path("object").asText()).isEqualTo("chat.completion");
        assertThat(chat.path("role").asText()).isEqualTo("assistant");
        assertThat(chat.path("text").asText()).isNotEmpty()
                .isEqualTo(refChat.path("choices").get(0).path("message").path("content").asText());
        assertThat(chat.path("usage")).isEqualTo(refChat.path("usage"));
        assertThat(chat.path("usage").path("prompt_tokens").asInt()).isPositive();
        assertThat(chat.path("usage").path("completion_tokens").asInt()).isEqualTo(24);

        JsonNode chatStream = out.path("chatStream");
        assertThat(chatStream.path("text").asText()).isEqualTo(chat.path("text").asText());
        assertThat(chatStream.path("role").asText()).isEqualTo("assistant");
        assertThat(chatStream.path("usage")).isEqualTo(chat.path("usage"));
        assertThat(chatStream.path("finishReason").asText()).isEqualTo("length");
        assertThat(out.path("chatStreamHelper").path("text").asText()).isEqualTo(chat.path("text").asText());

        JsonNode wrongKey = out.path("wrongKeyError");
        assertThat(wrongKey.path("status").asInt()).isEqualTo(401);
        assertThat(wrongKey.path("name").asText()).isEqualTo("AuthenticationError");
        assertThat(wrongKey.path("code").asText()).isEqualTo("invalid_api_key");
        JsonNode badRequest = out.path("badRequestError");
        assertThat(badRequest.path("status").asInt()).isEqualTo(400);
        assertThat(badRequest.path("name").asText()).isEqualTo("BadRequestError");
        assertThat(badRequest.path("param").asText()).isEqualTo("top_p");
        assertThat(badRequest.path("type").asText()).isEqualTo("invalid_request_error");
        JsonNode unknownModel = out.path("unknownModelError");
        assertThat(unknownModel.path("status").asInt()).isEqualTo(404);
        assertThat(unknownModel.path("code").asText()).isEqualTo("model_not_found");
        assertThat(unknownModel.path("param").asText()).isEqualTo("model");
    }

    // ------------------------------------------------------------------------------------------------ raw HTTP

    @Test
    @Order(2)
    void healthNeedsNoKeyEverythingElseDoes() throws Exception {
        HttpResponse<String> health = HTTP.send(HttpRequest.newBuilder(URI.create(server.base + "/health")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(health.statusCode()).isEqualTo(200);
        for (String path : List.of("/v1/models", "/metrics")) {
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(server.base + path)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).as(path).isEqualTo(401);
            assertThat(JSON.readTree(r.body()).path("error").path("code").asText()).isEqualTo("invalid_api_key");
        }
    }

    /** --max-batch-size 1 --max-queue 1: one running, one waiting, the third is a 429; closing frees all. */
    @Test
    @Order(3)
    void maxQueueFlagGives429() throws Exception {
        // temperature 0: sampling at 1.0 from random weights eventually picks an id in the model's vocabulary padding
        // (TINY: 444..447, past the tokenizer's 444), which the engine fails on (see the engine's issue)
        String longRun = "{\"model\":\"tiny\",\"prompt\":\"long\",\"max_tokens\":3000,\"temperature\":0,"
                + "\"ignore_eos\":true,\"stream\":true}";
        try (Socket running = open(longRun)) {
            BufferedReader reader = new BufferedReader(new InputStreamReader(running.getInputStream(),
                    StandardCharsets.UTF_8));
            String line;
            while ((line = reader.readLine()) != null && !line.startsWith("data: ")) {
                // headers
            }
            assertThat(line).as("the first request streams").isNotNull();
            try (Socket waiting = open(longRun)) {
                await().atMost(Duration.ofSeconds(10)).until(() -> metric("distserve_sequences_waiting") == 1.0);
                HttpResponse<String> r = post("/v1/completions",
                        "{\"model\":\"tiny\",\"prompt\":\"third\",\"max_tokens\":4}");
                assertThat(r.statusCode()).as(r.body()).isEqualTo(429);
                assertThat(JSON.readTree(r.body()).path("error").path("type").asText()).isEqualTo("rate_limit_error");
            }
        }
        await().atMost(Duration.ofSeconds(15)).untilAsserted(() -> {
            assertThat(metric("distserve_kv_blocks_used")).isZero();
            assertThat(metric("distserve_sequences_running")).isZero();
            assertThat(metric("distserve_sequences_waiting")).isZero();
        });
        assertThat(post("/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"again\",\"max_tokens\":4,\"temperature\":0}").statusCode())
                .isEqualTo(200);
    }

    /** SIGTERM: the server drains, stops and exits by itself; nothing unexpected in its log. */
    @Test
    @Order(Integer.MAX_VALUE)
    void sigtermStopsTheServer() throws Exception {
        int code = server.stop();
        assertThat(server.process.isAlive()).isFalse();
        assertThat(code).as("exit code after SIGTERM").isIn(0, 130, 143);
        String log = server.output();
        // (the final "engine ... stopped" line is not asserted: Camel Main's hook lets the JVM exit once the context
        // has stopped, which can be before the last listener logs)
        assertThat(log).contains("serving tiny as Hybrid");
        List<String> problems = new ArrayList<>();
        for (String line : log.split("\n")) {
            if (line.contains(" ERROR ") || line.contains("Exception in thread")) {
                problems.add(line);
            }
        }
        assertThat(problems).as("errors in %s", server.log).isEmpty();
    }

    private static Socket open(String body) throws IOException {
        Socket socket = new Socket("127.0.0.1", server.port);
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        OutputStream out = socket.getOutputStream();
        out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Authorization: Bearer " + KEY + "\r\nContent-Length: " + bytes.length + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.flush();
        return socket;
    }

    private static double metric(String sample) throws IOException, InterruptedException {
        String text = HTTP.send(HttpRequest.newBuilder(URI.create(server.base + "/metrics"))
                .header("Authorization", "Bearer " + KEY).build(), HttpResponse.BodyHandlers.ofString()).body();
        for (String line : text.split("\n")) {
            if (line.startsWith(sample + " ")) {
                return Double.parseDouble(line.substring(sample.length() + 1).trim());
            }
        }
        throw new AssertionError("no " + sample + " in /metrics");
    }

    /**
     * {@code --migration-backend rdma} where RDMA cannot run (no machine here has libdisni or an RDMA device): the
     * engine stops at start with one line saying which is missing, and exit code 1, as {@code --backend cuda}
     * without a GPU does.
     */
    @Test
    @Order(100)
    void anEngineAskedForRdmaWhereItCannotRunStopsWithOneLine() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(
                new io.distserve.kv.rdma.RdmaTransportProvider().unavailableReason().isPresent(),
                "this machine can run RDMA");
        Path log = ServerProcess.logs().resolve("engine-rdma-unavailable.log");
        java.util.List<String> cmd = ServerProcess.java("-jar", ServerProcess.jar().toString(), "serve", "api_server",
                dir.resolve("tiny").toString(), "--server-name", "127.0.0.1", "--server-port",
                Integer.toString(ServerProcess.freePort()), "--migration-backend", "rdma", "--threads", "1");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            assertThat(p.waitFor(90, TimeUnit.SECONDS)).as("the engine exits").isTrue();
        } finally {
            p.destroyForcibly();
        }
        String out = Files.readString(log);
        assertThat(p.exitValue()).as(out).isEqualTo(1);
        assertThat(out).contains("--migration-backend rdma: unavailable here: ").containsAnyOf("libdisni",
                "RDMA device").doesNotContain("\tat ");
    }
}
