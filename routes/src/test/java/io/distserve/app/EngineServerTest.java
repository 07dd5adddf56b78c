package io.distserve.app;

import static io.distserve.app.TestEngineServer.chat;
import static io.distserve.app.TestEngineServer.completion;
import static io.distserve.app.TestEngineServer.json;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import javax.management.ObjectName;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.LogEvent;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Black-box HTTP tests against one engine node started in this JVM (TINY random weights, 1 compute thread, a
 * 256-block KV cache): both OpenAI endpoints whole and streamed, every kind of bad input, unexpected failures,
 * streaming latency, client disconnects, concurrency, /metrics and the JMX beans.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class EngineServerTest {

    @TempDir
    static Path dir;

    static TestEngineServer server;

    @BeforeAll
    static void start() throws Exception {
        server = new TestEngineServer(dir, List.of(), 256, 1024, "classpath:camel/test-failure.camel.yaml");
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    // ------------------------------------------------------------------------------------------------ happy paths

    @Test
    void completionWhole() throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", completion("Shanghai is a city that ", 12, false,
                "\"ignore_eos\":true"));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type")).hasValueSatisfying(v -> assertThat(v).startsWith("application/json"));
        JsonNode body = json(r);
        assertThat(body.path("id").asText()).startsWith("cmpl-");
        assertThat(body.path("object").asText()).isEqualTo("text_completion");
        assertThat(body.path("model").asText()).isEqualTo("tiny");
        JsonNode choice = body.path("choices").get(0);
        assertThat(choice.path("index").asInt()).isZero();
        assertThat(choice.path("text").asText()).isNotEmpty();
        assertThat(choice.path("finish_reason").asText()).isEqualTo("length");
        JsonNode usage = body.path("usage");
        assertThat(usage.path("prompt_tokens").asInt())
                .isEqualTo(server.app().node().tokenizer().encodePrompt("Shanghai is a city that ").length);
        assertThat(usage.path("completion_tokens").asInt()).isEqualTo(12);
        assertThat(usage.path("total_tokens").asInt()).isEqualTo(usage.path("prompt_tokens").asInt() + 12);
        // request headers are never echoed into the response
        assertThat(r.headers().firstValue("User-Agent")).isEmpty();
    }

    @Test
    void chatWhole() throws Exception {
        HttpResponse<String> r = server.post("/v1/chat/completions", chat("Say hi", 10, false, "\"ignore_eos\":true"));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode body = json(r);
        assertThat(body.path("id").asText()).startsWith("chatcmpl-");
        assertThat(body.path("object").asText()).isEqualTo("chat.completion");
        JsonNode message = body.path("choices").get(0).path("message");
        assertThat(message.path("role").asText()).isEqualTo("assistant");
        assertThat(message.path("content").isTextual()).isTrue();
        assertThat(body.path("choices").get(0).path("finish_reason").asText()).isEqualTo("length");
        JsonNode usage = body.path("usage");
        // the ChatML template wraps the message: more prompt tokens than the message's bytes
        assertThat(usage.path("prompt_tokens").asInt()).isGreaterThan("Say hi".length());
        assertThat(usage.path("completion_tokens").asInt()).isEqualTo(10);
        assertThat(usage.path("total_tokens").asInt()).isEqualTo(usage.path("prompt_tokens").asInt() + 10);
    }

    @Test
    void completionStreamEqualsWholeAtTemperatureZero() throws Exception {
        String prompt = "The capital of France is";
        JsonNode whole = json(server.post("/v1/completions", completion(prompt, 24, false, "\"ignore_eos\":true")));
        TestEngineServer.Stream s = server.postStream("/v1/completions", completion(prompt, 24, true,
                "\"ignore_eos\":true,\"stream_options\":{\"include_usage\":true}"));
        assertThat(s.status()).isEqualTo(200);
        assertThat(s.contentType()).startsWith("text/event-stream");
        assertThat(s.rawBody()).endsWith("data: [DONE]\n\n");
        assertThat(s.events().get(s.events().size() - 1).done()).isTrue();
        assertThat(s.events().stream().filter(TestEngineServer.Event::done)).hasSize(1);

        List<JsonNode> chunks = s.chunks();
        String id = chunks.get(0).path("id").asText();
        assertThat(id).startsWith("cmpl-");
        StringBuilder text = new StringBuilder();
        String finish = null;
        JsonNode usage = null;
        for (JsonNode c : chunks) {
            assertThat(c.path("id").asText()).isEqualTo(id);
            assertThat(c.path("object").asText()).isEqualTo("text_completion");
            if (c.has("usage")) {
                usage = c.path("usage");
                assertThat(c.path("choices")).isEmpty();
                continue;
            }
            JsonNode choice = c.path("choices").get(0);
            text.append(choice.path("text").asText());
            if (!choice.path("finish_reason").isNull()) {
                finish = choice.path("finish_reason").asText();
            }
        }
        assertThat(text.toString()).isEqualTo(whole.path("choices").get(0).path("text").asText());
        assertThat(finish).isEqualTo("length");
        assertThat(usage).isNotNull();
        assertThat(usage).isEqualTo(whole.path("usage"));
        // the usage chunk is the last before [DONE]
        assertThat(chunks.get(chunks.size() - 1).has("usage")).isTrue();
    }

    @Test
    void chatStreamEqualsWholeAtTemperatureZero() throws Exception {
        JsonNode whole = json(server.post("/v1/chat/completions", chat("Tell me a story", 20, false,
                "\"ignore_eos\":true")));
        TestEngineServer.Stream s = server.postStream("/v1/chat/completions", chat("Tell me a story", 20, true,
                "\"ignore_eos\":true"));
        assertThat(s.status()).isEqualTo(200);
        assertThat(s.contentType()).startsWith("text/event-stream");
        List<JsonNode> chunks = s.chunks();
        assertThat(chunks.get(0).path("choices").get(0).path("delta").path("role").asText()).isEqualTo("assistant");
        StringBuilder text = new StringBuilder();
        for (JsonNode c : chunks) {
            assertThat(c.path("object").asText()).isEqualTo("chat.completion.chunk");
            assertThat(c.has("usage")).as("no usage chunk unless asked").isFalse();
            text.append(c.path("choices").get(0).path("delta").path("content").asText(""));
        }
        assertThat(chunks.get(chunks.size() - 1).path("choices").get(0).path("finish_reason").asText())
                .isEqualTo("length");
        assertThat(text.toString()).isEqualTo(whole.path("choices").get(0).path("message").path("content").asText());
        assertThat(s.events().get(s.events().size() - 1).done()).isTrue();
    }

    /** platform-http copies message headers into the reply: request headers must never come back. */
    @Test
    void requestHeadersAreNotEchoed() throws Exception {
        for (String body : new String[] {completion("echo?", 3, false, null), completion("echo?", 3, true, null),
                "{\"prompt\":\"x\",\"n\":5}"}) {
            HttpResponse<String> r = server.http.send(server.request("/v1/completions")
                    .header("Content-Type", "application/json").header("X-Secret-Token", "hunter2")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(r.headers().map().keySet()).as(body).noneMatch(h -> h.equalsIgnoreCase("X-Secret-Token")
                    || h.equalsIgnoreCase("User-Agent") || h.equalsIgnoreCase("Host"));
        }
    }

    @Test
    void modelsAndHealth() throws Exception {
        HttpResponse<String> models = server.get("/v1/models");
        assertThat(models.statusCode()).isEqualTo(200);
        JsonNode body = json(models);
        assertThat(body.path("object").asText()).isEqualTo("list");
        assertThat(body.path("data").get(0).path("id").asText()).isEqualTo("tiny");
        HttpResponse<String> health = server.get("/health");
        assertThat(health.statusCode()).isEqualTo(200);
        assertThat(json(health).path("status").asText()).isEqualTo("serving");
    }

    /** curl -d sends application/x-www-form-urlencoded: the JSON body must still be read, byte for byte. */
    @Test
    void jsonBodyWithoutJsonContentTypeIsAccepted() throws Exception {
        String prompt = "1+1=2 & 50% of 10 = 5";
        String body = completion(prompt, 8, false, "\"ignore_eos\":true");
        JsonNode expected = json(server.post("/v1/completions", body));
        for (String contentType : new String[] {"application/x-www-form-urlencoded", "text/plain"}) {
            HttpResponse<String> r = server.http.send(server.request("/v1/completions")
                    .header("Content-Type", contentType).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).as(contentType + ": " + r.body()).isEqualTo(200);
            JsonNode got = json(r);
            assertThat(got.path("usage")).as(contentType).isEqualTo(expected.path("usage"));
            assertThat(got.path("choices").get(0).path("text")).as(contentType)
                    .isEqualTo(expected.path("choices").get(0).path("text"));
        }
    }

    // ------------------------------------------------------------------------------------------------ bad input

    static Stream<Arguments> badRequests() {
        String longPrompt = IntStream.range(0, 4000).mapToObj(i -> Integer.toString(65 + i % 26))
                .collect(Collectors.joining(",", "[", "]"));
        String c = "/v1/completions";
        String ch = "/v1/chat/completions";
        String msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
        return Stream.of(
                Arguments.of(c, "{not json", null),
                Arguments.of(c, "", null),
                Arguments.of(c, "[1,2,3]", null),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":123}", "prompt"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":\"ten\"}", "max_tokens"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"temperature\":\"hot\"}", "temperature"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"stream\":\"yes\"}", "stream"),
                Arguments.of(c, "{\"model\":7,\"prompt\":\"hi\"}", "model"),
                Arguments.of(c, "{\"model\":\"tiny\"}", "prompt"),
                Arguments.of(c, "{\"model\":\"no-such-model\",\"prompt\":\"hi\"}", "model"),
                Arguments.of(c, "{\"model\":\"no-such-model\",\"prompt\":\"hi\",\"stream\":true}", "model"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":4095}", "max_tokens"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":" + longPrompt + ",\"max_tokens\":97}", "max_tokens"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":" + longPrompt + ",\"max_tokens\":97,\"stream\":true}",
                        "max_tokens"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":0}", "max_tokens"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":-5}", "max_tokens"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"n\":2}", "n"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"temperature\":-0.1}", "temperature"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"top_p\":0}", "top_p"),
                Arguments.of(c, "{\"model\":\"tiny\",\"prompt\":\"hi\",\"top_p\":1.5}", "top_p"),
                Arguments.of(ch, "{\"model\":\"tiny\"}", "messages"),
                Arguments.of(ch, "{\"model\":\"tiny\",\"messages\":\"hi\"}", "messages"),
                Arguments.of(ch, "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
                        "messages[0].content"),
                Arguments.of(ch, "{\"model\":\"tiny\",\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role"),
                Arguments.of(ch, "{\"model\":\"other\"," + msgs + "}", "model"),
                Arguments.of(ch, "{\"model\":\"other\"," + msgs + ",\"stream\":true}", "model"),
                Arguments.of(ch, "{\"model\":\"tiny\"," + msgs + ",\"max_tokens\":4090}", "max_tokens"),
                Arguments.of(ch, "{\"model\":\"tiny\"," + msgs + ",\"max_tokens\":0}", "max_tokens"),
                Arguments.of(ch, "{\"model\":\"tiny\"," + msgs + ",\"n\":3}", "n"),
                Arguments.of(ch, "{\"model\":\"tiny\"," + msgs + ",\"temperature\":-1}", "temperature"),
                Arguments.of(ch, "{\"model\":\"tiny\"," + msgs + ",\"top_p\":-0.5}", "top_p"),
                Arguments.of(ch, "{\"model\":\"tiny\"," + msgs + ",\"top_p\":1.01}", "top_p"),
                Arguments.of(ch, "{\"model\":\"tiny\"," + msgs + ",\"max_tokens\":2.5}", "max_tokens"));
    }

    @ParameterizedTest(name = "[{index}] {0} {2}")
    @MethodSource("badRequests")
    void badRequestIs400WithOpenAiErrorUnknownModel404(String path, String body, String param) throws Exception {
        HttpResponse<String> r = server.post(path, body);
        // a model this server does not serve: 404 model_not_found, as OpenAI, vLLM and LMDeploy answer
        boolean unknownModel = body.contains("\"model\":\"no-such-model\"") || body.contains("\"model\":\"other\"");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(unknownModel ? 404 : 400);
        if (unknownModel) {
            assertThat(json(r).path("error").path("code").asText()).isEqualTo("model_not_found");
        }
        assertThat(r.headers().firstValue("Content-Type")).hasValueSatisfying(v -> assertThat(v).startsWith("application/json"));
        JsonNode error = json(r).path("error");
        assertThat(error.path("message").asText()).isNotBlank();
        assertThat(error.path("type").asText()).isEqualTo("invalid_request_error");
        assertThat(error.has("param")).isTrue();
        assertThat(error.has("code")).isTrue();
        if (param == null) {
            assertThat(error.path("param").isNull()).isTrue();
        } else {
            assertThat(error.path("param").asText()).isEqualTo(param);
        }
    }

    /** Token-id prompts: ids beyond the model's vocabulary and in its padding past the tokenizer's are 400s. */
    @Test
    void promptTokenIdsOutsideTheVocabularyAre400() throws Exception {
        int tokenizerSize = server.app().node().tokenizer().tokenizer().vocabSize();
        for (int id : new int[] {tokenizerSize, tokenizerSize + 1, 100_000}) {
            HttpResponse<String> r = server.post("/v1/completions",
                    "{\"model\":\"tiny\",\"prompt\":[65," + id + "],\"max_tokens\":2}");
            assertThat(r.statusCode()).as("id %d: %s", id, r.body()).isEqualTo(400);
            assertThat(json(r).path("error").path("param").asText()).isEqualTo("prompt");
        }
        HttpResponse<String> ok = server.post("/v1/completions",
                "{\"model\":\"tiny\",\"prompt\":[65," + (tokenizerSize - 1) + "],\"max_tokens\":2,\"temperature\":0,\"ignore_eos\":true}");
        assertThat(ok.statusCode()).as(ok.body()).isEqualTo(200);
        assertThat(json(ok).path("usage").path("prompt_tokens").asInt()).isEqualTo(2);
    }

    @Test
    void unknownPathAndWrongMethodAnswerWithOpenAiErrors() throws Exception {
        HttpResponse<String> missing = server.get("/v1/nothing-here");
        assertThat(missing.statusCode()).isEqualTo(404);
        assertThat(json(missing).path("error").path("code").asText()).isEqualTo("not_found");
        assertThat(json(missing).path("error").path("message").asText()).contains("/v1/nothing-here");
        HttpResponse<String> get = server.get("/v1/completions");
        assertThat(get.statusCode()).isEqualTo(405);
        assertThat(get.headers().firstValue("Allow")).hasValue("POST");
        assertThat(json(get).path("error").path("code").asText()).isEqualTo("method_not_allowed");
        HttpResponse<String> post = server.post("/health", "{}");
        assertThat(post.statusCode()).isEqualTo(405);
        assertThat(json(post).path("error").path("type").asText()).isEqualTo("invalid_request_error");
        assertThat(server.get("/health").statusCode()).isEqualTo(200);
    }

    /** A step that fails unexpectedly: 500 with an OpenAI error body, the stack trace in the log, still serving. */
    @Test
    void unexpectedFailureIs500AndTheServerKeepsServing() throws Exception {
        try (LogCapture log = LogCapture.attach()) {
            HttpResponse<String> r = server.get("/test/failure");
            assertThat(r.statusCode()).isEqualTo(500);
            JsonNode error = json(r).path("error");
            assertThat(error.path("type").asText()).isEqualTo("internal_error");
            assertThat(error.path("message").asText()).contains("see the server log")
                    .doesNotContain("injected failure"); // no internals to the client
            List<LogEvent> errors = log.atLeast(Level.ERROR);
            assertThat(errors).as(LogCapture.describe(log.events()))
                    .anySatisfy(e -> {
                        assertThat(e.getThrown()).isInstanceOf(IllegalStateException.class)
                                .hasMessage("injected failure for the test");
                        assertThat(e.getThrown().getStackTrace()).isNotEmpty();
                    });
        }
        HttpResponse<String> after = server.post("/v1/completions", completion("still there?", 4, false, null));
        assertThat(after.statusCode()).isEqualTo(200);
        assertThat(server.get("/health").statusCode()).isEqualTo(200);
    }

    // ------------------------------------------------------------------------------------------------ streaming

    /** Chunks leave the server as they are produced: the first long before the last. */
    @Test
    void streamedChunksArriveAsTheyAreProduced() throws Exception {
        // warm up the path first (a cold JVM can spend a few hundred ms before its first token)
        server.postStream("/v1/completions", completion("Once upon a time", 50, true, "\"ignore_eos\":true"));
        TestEngineServer.Stream s = server.postStream("/v1/completions", completion("Once upon a time", 400, true,
                "\"ignore_eos\":true"));
        assertThat(s.status()).isEqualTo(200);
        List<TestEngineServer.Event> content = s.events().stream().filter(e -> !e.done())
                .filter(e -> !e.json().path("choices").get(0).path("text").asText().isEmpty()).toList();
        assertThat(content.size()).as("content chunks").isGreaterThan(200);
        long first = content.get(0).atNanos();
        long last = content.get(content.size() - 1).atNanos();
        long distinctMillis = content.stream().mapToLong(e -> e.atNanos() / 1_000_000).distinct().count();
        System.out.printf("[stream timing] %d content chunks: first at %.1f ms, last at %.1f ms, arriving in %d "
                + "distinct milliseconds%n", content.size(), first / 1e6, last / 1e6, distinctMillis);
        assertThat(first).as("first chunk (ns) vs half the last").isLessThan(last / 2);
        assertThat(distinctMillis).as("chunks spread over time, not one burst").isGreaterThan(20);
    }

    // ------------------------------------------------------------------------------------------------ disconnects

    @Test
    void clientDisconnectDuringStreamFreesBlocks() throws Exception {
        double closedBefore = clientClosedCount();
        try (LogCapture log = LogCapture.attach(Level.INFO)) {
            String id;
            try (Socket socket = server.openRequest("/v1/completions", completion("Long story:", 4000, true,
                    "\"ignore_eos\":true"))) {
                BufferedReader reader = new BufferedReader(new InputStreamReader(socket.getInputStream(),
                        StandardCharsets.UTF_8));
                String line;
                while ((line = reader.readLine()) != null && !line.startsWith("data: ")) {
                    // status line and headers
                }
                assertThat(line).isNotNull();
                id = TestEngineServer.JSON.readTree(line.substring(6)).path("id").asText();
                assertThat((Integer) server.engineAttribute("KvBlocksUsed")).isPositive();
            }
            // the socket is closed: the sequence is aborted and its blocks freed, long before 4000 tokens
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                assertThat(server.metric("distserve_kv_blocks_used")).isZero();
                assertThat(server.metric("distserve_sequences_running")).isZero();
                assertThat(server.metric("distserve_requests_in_flight")).isZero();
            });
            await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(log.events())
                    .anySatisfy(e -> assertThat(e.getMessage().getFormattedMessage()).contains(id)
                            .contains("finish=abort")));
            assertThat(log.atLeast(Level.WARN)).as(LogCapture.describe(log.atLeast(Level.WARN))).isEmpty();
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> clientClosedCount() == closedBefore + 1);
    }

    @Test
    void clientDisconnectDuringWholeRequestFreesBlocks() throws Exception {
        double closedBefore = clientClosedCount();
        try (LogCapture log = LogCapture.attach(Level.INFO)) {
            long servedBefore = (Long) server.engineAttribute("RequestsServed");
            try (Socket socket = server.openRequest("/v1/completions", completion("Long story:", 4000, false,
                    "\"ignore_eos\":true"))) {
                await().atMost(Duration.ofSeconds(10)).until(() -> (Integer) server.engineAttribute("Running") == 1);
                assertThat((Integer) server.engineAttribute("KvBlocksUsed")).isPositive();
            }
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                assertThat((Integer) server.engineAttribute("KvBlocksUsed")).isZero();
                assertThat((Integer) server.engineAttribute("Running")).isZero();
                assertThat((Long) server.engineAttribute("RequestsServed")).isEqualTo(servedBefore + 1);
            });
            await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(log.events())
                    .anySatisfy(e -> assertThat(e.getMessage().getFormattedMessage()).contains("stream=false")
                            .contains("finish=abort")));
            assertThat(log.atLeast(Level.WARN)).as(LogCapture.describe(log.atLeast(Level.WARN))).isEmpty();
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> clientClosedCount() == closedBefore + 1);
        assertThat(server.post("/v1/completions", completion("after", 4, false, null)).statusCode()).isEqualTo(200);
    }

    /** Requests counted with status 499 (client closed the connection first). */
    private static double clientClosedCount() throws Exception {
        String sample = "distserve_requests_total{route=\"completions\",status=\"499\"}";
        String text = server.get("/metrics").body();
        return text.contains(sample + " ") ? TestEngineServer.metric(text, sample) : 0;
    }

    // ------------------------------------------------------------------------------------------------ concurrency

    @Test
    void sixteenConcurrentRequestsAllCompleteWithCorrectUsage() throws Exception {
        int n = 16;
        int maxTokens = 24;
        List<String> prompts = IntStream.range(0, n).mapToObj(i -> "Request number " + i + " says").toList();
        // references, one at a time
        List<JsonNode> solo = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            solo.add(json(server.post(i % 4 == 3 ? "/v1/chat/completions" : "/v1/completions", body(i, prompts, maxTokens, false))));
        }
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            CountDownLatch go = new CountDownLatch(1);
            List<Future<Object>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int k = i;
                futures.add(pool.submit(() -> {
                    go.await();
                    String path = k % 4 == 3 ? "/v1/chat/completions" : "/v1/completions";
                    boolean stream = k % 2 == 1;
                    return stream ? server.postStream(path, body(k, prompts, maxTokens, true))
                            : server.post(path, body(k, prompts, maxTokens, false));
                }));
            }
            go.countDown();
            for (int i = 0; i < n; i++) {
                Object result = futures.get(i).get();
                JsonNode expected = solo.get(i);
                boolean chat = i % 4 == 3;
                if (result instanceof TestEngineServer.Stream s) {
                    assertThat(s.status()).isEqualTo(200);
                    StringBuilder text = new StringBuilder();
                    JsonNode usage = null;
                    for (JsonNode c : s.chunks()) {
                        if (c.has("usage")) {
                            usage = c.get("usage");
                        } else {
                            JsonNode choice = c.path("choices").get(0);
                            text.append(chat ? choice.path("delta").path("content").asText("") : choice.path("text").asText());
                        }
                    }
                    assertThat(usage).as("request %d", i).isEqualTo(expected.path("usage"));
                    assertThat(text.toString()).as("request %d", i).isEqualTo(textOf(expected, chat));
                } else {
                    @SuppressWarnings("unchecked")
                    HttpResponse<String> r = (HttpResponse<String>) result;
                    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                    JsonNode got = json(r);
                    assertThat(got.path("usage")).as("request %d", i).isEqualTo(expected.path("usage"));
                    assertThat(got.path("usage").path("completion_tokens").asInt()).isEqualTo(maxTokens);
                    assertThat(textOf(got, chat)).as("request %d", i).isEqualTo(textOf(expected, chat));
                }
            }
        } finally {
            pool.shutdownNow();
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> (Integer) server.engineAttribute("KvBlocksUsed") == 0);
    }

    private static String body(int i, List<String> prompts, int maxTokens, boolean stream) {
        String extra = "\"ignore_eos\":true" + (stream ? ",\"stream_options\":{\"include_usage\":true}" : "");
        return i % 4 == 3 ? chat(prompts.get(i), maxTokens, stream, extra)
                : completion(prompts.get(i), maxTokens, stream, extra);
    }

    private static String textOf(JsonNode response, boolean chat) {
        JsonNode choice = response.path("choices").get(0);
        return chat ? choice.path("message").path("content").asText() : choice.path("text").asText();
    }

    // ------------------------------------------------------------------------------------------------ observability

    @Test
    void metricsExposeRequestsEngineStateTokensLatencyAndCamelRoutes() throws Exception {
        server.post("/v1/completions", completion("metrics please", 6, false, "\"ignore_eos\":true"));
        server.postStream("/v1/chat/completions", chat("metrics please", 6, true, "\"ignore_eos\":true"));
        server.post("/v1/completions", "{\"prompt\":\"x\",\"n\":2}");
        HttpResponse<String> r = server.get("/metrics");
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type")).hasValueSatisfying(v -> assertThat(v).startsWith("text/plain"));
        String text = r.body();
        assertThat(text)
                .contains("# TYPE distserve_requests_total counter")
                .containsPattern("distserve_requests_total\\{route=\"completions\",status=\"200\"} [1-9]")
                .containsPattern("distserve_requests_total\\{route=\"chat-completions\",status=\"200\"} [1-9]")
                .containsPattern("distserve_requests_total\\{route=\"completions\",status=\"400\"} [1-9]")
                .contains("distserve_requests_in_flight ")
                .contains("distserve_sequences_waiting ")
                .contains("distserve_sequences_running ")
                .contains("distserve_kv_blocks_used ")
                .contains("distserve_kv_blocks_free ")
                .contains("distserve_kv_blocks 256.0") // the total (Prometheus keeps _total for counters)
                .contains("# TYPE distserve_time_to_first_token_seconds histogram")
                .contains("distserve_time_to_first_token_seconds_bucket{le=")
                .contains("# TYPE distserve_time_per_output_token_seconds histogram")
                .contains("distserve_time_per_output_token_seconds_bucket{le=");
        assertThat(TestEngineServer.metric(text, "distserve_prompt_tokens_total")).isPositive();
        assertThat(TestEngineServer.metric(text, "distserve_generation_tokens_total")).isGreaterThanOrEqualTo(12);
        assertThat(TestEngineServer.metric(text, "distserve_time_to_first_token_seconds_count")).isGreaterThanOrEqualTo(2);
        assertThat(TestEngineServer.metric(text, "distserve_kv_blocks_used")
                + TestEngineServer.metric(text, "distserve_kv_blocks_free")).isEqualTo(256.0);
        // Camel's own route metrics, in the same registry
        assertThat(text).containsPattern("camel_[a-z_]+\\{[^}]*routeId=\"completions\"")
                .containsPattern("camel_[a-z_]+\\{[^}]*routeId=\"chat-completions\"");
    }

    @Test
    void jmxEngineBeanAndCamelRouteBeans() throws Exception {
        ObjectName engine = server.engineMBean();
        assertThat(engine.getKeyProperty("context")).isNotBlank();
        long tokensBefore = (Long) server.engineAttribute("TokensGenerated");
        long servedBefore = (Long) server.engineAttribute("RequestsServed");
        assertThat(server.post("/v1/completions", completion("jmx", 5, false, "\"ignore_eos\":true")).statusCode())
                .isEqualTo(200);
        assertThat((Long) server.engineAttribute("TokensGenerated")).isGreaterThanOrEqualTo(tokensBefore + 5);
        assertThat((Long) server.engineAttribute("RequestsServed")).isGreaterThanOrEqualTo(servedBefore + 1);
        int used = (Integer) server.engineAttribute("KvBlocksUsed");
        int free = (Integer) server.engineAttribute("KvBlocksFree");
        assertThat(used + free).isEqualTo(256);
        assertThat((Integer) server.engineAttribute("Running")).isGreaterThanOrEqualTo(0);
        assertThat((Integer) server.engineAttribute("Waiting")).isGreaterThanOrEqualTo(0);
        assertThat(server.engineAttribute("Model")).isEqualTo("tiny");
        assertThat(server.engineAttribute("State")).isEqualTo("SERVING");
        assertThat((Boolean) TestEngineServer.MBEANS.invoke(engine, "abort", new Object[] {"no-such-request"},
                new String[] {String.class.getName()})).isFalse();

        // Camel's own route MBeans, in the same context
        String context = engine.getKeyProperty("context");
        for (String route : List.of("completions", "chat-completions", "models", "health", "metrics")) {
            ObjectName name = new ObjectName("org.apache.camel:context=" + context + ",type=routes,name=\""
                    + route + "\"");
            assertThat(TestEngineServer.MBEANS.isRegistered(name)).as(name.toString()).isTrue();
            assertThat(TestEngineServer.MBEANS.getAttribute(name, "State")).isEqualTo("Started");
        }
        ObjectName completions = new ObjectName("org.apache.camel:context=" + context
                + ",type=routes,name=\"completions\"");
        assertThat((Long) TestEngineServer.MBEANS.getAttribute(completions, "ExchangesCompleted")).isPositive();
    }

    /** JMX abort(id) of a running stream: the sequence stops, its blocks are freed, the stream still ends. */
    @Test
    void jmxAbortStopsARunningStream() throws Exception {
        ObjectName engine = server.engineMBean();
        HttpResponse<InputStream> r = server.http.send(server.request("/v1/completions")
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(completion("abort me", 4000, true, "\"ignore_eos\":true")))
                .build(), HttpResponse.BodyHandlers.ofInputStream());
        List<String> lines = new ArrayList<>();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            String line = reader.readLine();
            while (line != null && !line.startsWith("data: ")) {
                line = reader.readLine();
            }
            assertThat(line).isNotNull();
            String id = TestEngineServer.JSON.readTree(line.substring(6)).path("id").asText();
            assertThat((Boolean) TestEngineServer.MBEANS.invoke(engine, "abort", new Object[] {id},
                    new String[] {String.class.getName()})).isTrue();
            while ((line = reader.readLine()) != null) {
                if (line.startsWith("data: ")) {
                    lines.add(line.substring(6));
                }
            }
        }
        assertThat(lines).isNotEmpty();
        assertThat(lines.get(lines.size() - 1)).isEqualTo("[DONE]");
        assertThat(lines.size()).as("far fewer than 4000 chunks").isLessThan(3000);
        await().atMost(Duration.ofSeconds(5)).until(() -> (Integer) server.engineAttribute("KvBlocksUsed") == 0);
    }
}
