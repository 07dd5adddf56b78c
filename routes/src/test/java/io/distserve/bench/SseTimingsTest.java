package io.distserve.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** A stream read as its bytes arrive, cut anywhere (mid-line, mid-character), with known arrival times. */
class SseTimingsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    private static String chunk(String text) {
        return "data: {\"choices\":[{\"index\":0,\"text\":\"" + text + "\"}]}\n\n";
    }

    @Test
    void timesEachTextChunkAndTakesTheUsage() {
        SseTimings t = new SseTimings(JSON, 1_000);
        byte[] a = (chunk("Zürich") + chunk("")).getBytes(StandardCharsets.UTF_8);
        byte[] b = (chunk(" is") + chunk(" nice")
                + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4,"
                + "\"prompt_tokens_details\":{\"cached_tokens\":8}}}\n\ndata: [DONE]\n\n").getBytes(StandardCharsets.UTF_8);
        // "Zürich": cut inside the two bytes of ü, and the next line cut in the middle
        int cut = chunk("Z").length() + 1;
        t.feed(java.util.Arrays.copyOfRange(a, 0, cut), 50_000);
        t.feed(java.util.Arrays.copyOfRange(a, cut, a.length), 81_000); // the first text chunk completes here
        t.feed(java.util.Arrays.copyOfRange(b, 0, 30), 95_000);
        t.feed(java.util.Arrays.copyOfRange(b, 30, b.length), 121_000);
        RequestOutcome o = t.outcome(130_000, 12);
        assertThat(o.ok()).isTrue();
        assertThat(o.ttftNanos()).isEqualTo(80_000);
        assertThat(o.itlNanos()).containsExactly(40_000, 0); // " is" and " nice" completed in the last feed
        assertThat(o.e2eNanos()).isEqualTo(129_000);
        assertThat(o.promptTokens()).isEqualTo(12);
        assertThat(o.completionTokens()).isEqualTo(4);
        assertThat(o.cachedTokens()).isEqualTo(8);
        assertThat(o.tpotMs()).isEqualTo((129_000 - 80_000) / 1e6 / 3);
    }

    @Test
    void chatDeltasCountAndErrorsOrAMissingDoneFail() {
        SseTimings chat = new SseTimings(JSON, 0);
        chat.feed(("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
                + "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
                + "data: {\"choices\":[{\"delta\":{\"content\":\"!\"}}]}\n\ndata: [DONE]\n\n")
                .getBytes(StandardCharsets.UTF_8), 10);
        RequestOutcome o = chat.outcome(20, 3);
        assertThat(o.ok()).isTrue();
        assertThat(o.completionTokens()).as("no usage chunk: text chunks counted").isEqualTo(2);

        SseTimings broken = new SseTimings(JSON, 0);
        broken.feed((chunk("a") + "data: {\"error\":{\"message\":\"The decode node failed mid-stream\"}}\n\n"
                + "data: [DONE]\n\n").getBytes(StandardCharsets.UTF_8), 5);
        assertThat(broken.outcome(9, 3).error()).isEqualTo("SSE error event: The decode node failed mid-stream");

        SseTimings cut = new SseTimings(JSON, 0);
        cut.feed(chunk("a").getBytes(StandardCharsets.UTF_8), 5);
        assertThat(cut.outcome(9, 3).error()).isEqualTo("the stream ended without [DONE]");
    }
}
