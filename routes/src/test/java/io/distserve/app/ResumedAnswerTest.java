package io.distserve.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code return_token_ids} and {@code resume_token_ids} on a real engine (demo model, CPU): what a proxy needs to
 * move a broken stream to another node. For every point where a stream could break, the text streamed up to it plus
 * the text of the answer resumed from its token ids is the uninterrupted answer, even where a character's bytes or a
 * possible stop string straddle the break.
 */
class ResumedAnswerTest {

    @TempDir
    static Path dir;
    static TestEngineServer server;

    @BeforeAll
    static void start() throws Exception {
        server = new TestEngineServer(dir, List.of(), 8, 64);
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    record Streamed(List<int[]> ids, List<String> texts, int[] promptIds, String finish) {
        String textUpTo(int chunks) {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < chunks; i++) {
                sb.append(texts.get(i));
            }
            return sb.toString();
        }
    }

    static Streamed stream(String body) throws Exception {
        TestEngineServer.Stream s = server.postStream("/v1/completions", body);
        assertThat(s.status()).isEqualTo(200);
        List<int[]> ids = new ArrayList<>();
        List<String> texts = new ArrayList<>();
        int[] prompt = null;
        String finish = null;
        for (TestEngineServer.Event e : s.events()) {
            if (e.data().equals("[DONE]")) {
                continue;
            }
            JsonNode c = TestEngineServer.JSON.readTree(e.data()).path("choices").path(0);
            if (c.has("prompt_token_ids")) {
                prompt = ints(c.path("prompt_token_ids"));
            }
            if (c.has("token_ids")) {
                ids.add(ints(c.path("token_ids")));
                texts.add(c.path("text").asText(""));
            }
            if (!c.path("finish_reason").isNull() && c.has("finish_reason")) {
                finish = c.path("finish_reason").asText();
            }
        }
        return new Streamed(ids, texts, prompt, finish);
    }

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }

    static String idsJson(int[] ids, int n) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < n; i++) {
            sb.append(i == 0 ? "" : ",").append(ids[i]);
        }
        return sb.append(']').toString();
    }

    @Test
    void everyBreakPointResumesToTheUninterruptedText() throws Exception {
        // non-ASCII text: the byte-level tokenizer splits characters over tokens, so text is held back at breaks
        for (String extra : new String[] {"\"ignore_eos\":true", "\"ignore_eos\":true,\"stop\":[\"é e\"]"}) {
            String prompt = "Grüße aus Köln: «déjà vu», 東京 ";
            String body = TestEngineServer.completion(prompt, 24, true, extra + ",\"return_token_ids\":true");
            Streamed full = stream(body);
            assertThat(full.promptIds()).isNotNull();
            int n = full.ids().size();
            assertThat(n).isPositive();
            int[] all = new int[n];
            for (int i = 0; i < n; i++) {
                assertThat(full.ids().get(i)).hasSize(1);
                all[i] = full.ids().get(i)[0];
            }
            String whole = full.textUpTo(n);
            // not vacuous: some breaks fall where text is held back (a character's first bytes, a possible stop)
            assertThat(full.texts()).as("chunks whose text was held back").contains("");
            for (int k = 1; k < n; k++) {
                String resumed = TestEngineServer.completion(prompt, 24, false, extra
                        + ",\"resume_token_ids\":" + idsJson(all, k));
                HttpResponse<String> r = server.post("/v1/completions", resumed);
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                JsonNode a = TestEngineServer.json(r);
                assertThat(full.textUpTo(k) + a.path("choices").path(0).path("text").asText())
                        .as("break after token %d of %d (%s)", k, n, extra).isEqualTo(whole);
                assertThat(a.path("usage").path("completion_tokens").asInt()).isEqualTo(n);
                assertThat(a.path("choices").path(0).path("finish_reason").asText()).isEqualTo(full.finish());
            }
        }
    }

    @Test
    void resumedTokensThatEndTheAnswerOrLeaveNothingAre400s() throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", TestEngineServer.completion("hello", 3, false,
                "\"resume_token_ids\":[10,11,12]"));
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(TestEngineServer.json(r).path("error").path("param").asText()).isEqualTo("resume_token_ids");
        r = server.post("/v1/completions", TestEngineServer.completion("hello", 3, false,
                "\"resume_token_ids\":[-1]"));
        assertThat(r.statusCode()).isEqualTo(400);
        r = server.post("/v1/completions", TestEngineServer.completion("hello", 3, false,
                "\"return_token_ids\":\"yes\""));
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(server.metric("distserve_kv_blocks_used")).isZero();
    }
}
