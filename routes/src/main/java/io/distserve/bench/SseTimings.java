package io.distserve.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads one streamed answer as its bytes arrive and notes when each text-carrying chunk came: the first is the TTFT,
 * the gaps between the others the inter-token latencies. Also takes the usage chunk, error events and [DONE].
 * Not thread-safe: one answer, one event loop.
 */
final class SseTimings {

    private final ObjectMapper json;
    private final long sentNanos;
    private byte[] pending = new byte[0];
    private long firstNanos = -1;
    private long lastNanos = -1;
    private long[] gaps = new long[16];
    private int gapCount;
    private int chunks;
    private int promptTokens = -1;
    private int completionTokens = -1;
    private int cachedTokens;
    private boolean done;
    private String error;

    SseTimings(ObjectMapper json, long sentNanos) {
        this.json = json;
        this.sentNanos = sentNanos;
    }

    /** Takes bytes as they arrived at {@code nowNanos}. */
    void feed(byte[] bytes, long nowNanos) {
        int start = 0;
        for (int i = 0; i < bytes.length; i++) {
            if (bytes[i] == '\n') {
                onLine(text(bytes, start, i).strip(), nowNanos);
                start = i + 1;
            }
        }
        // an incomplete line (maybe a cut UTF-8 character): keep its bytes for the next feed
        pending = start < bytes.length ? join(bytes, start, bytes.length) : new byte[0];
    }

    /** The line ending at {@code to}: what is pending from earlier feeds, then bytes[from, to). */
    private String text(byte[] bytes, int from, int to) {
        if (pending.length == 0) {
            return new String(bytes, from, to - from, StandardCharsets.UTF_8);
        }
        String s = new String(join(bytes, from, to), StandardCharsets.UTF_8);
        pending = new byte[0];
        return s;
    }

    private byte[] join(byte[] bytes, int from, int to) {
        byte[] all = Arrays.copyOf(pending, pending.length + (to - from));
        System.arraycopy(bytes, from, all, pending.length, to - from);
        return all;
    }

    private void onLine(String l, long now) {
        if (!l.startsWith("data:")) {
            return;
        }
        String payload = l.substring(5).strip();
        if (payload.equals("[DONE]")) {
            done = true;
            return;
        }
        JsonNode ev;
        try {
            ev = json.readTree(payload);
        } catch (java.io.IOException e) {
            if (error == null) {
                error = "unparsable SSE event: " + abbreviate(payload);
            }
            return;
        }
        if (ev.has("error")) {
            if (error == null) {
                error = "SSE error event: " + abbreviate(ev.path("error").path("message").asText(ev.toString()));
            }
            return;
        }
        JsonNode usage = ev.path("usage");
        if (usage.isObject()) {
            promptTokens = usage.path("prompt_tokens").asInt(-1);
            completionTokens = usage.path("completion_tokens").asInt(-1);
            cachedTokens = usage.path("prompt_tokens_details").path("cached_tokens").asInt(0);
        }
        for (JsonNode c : ev.path("choices")) {
            String text = c.has("text") ? c.path("text").asText("") : c.path("delta").path("content").asText("");
            if (!text.isEmpty()) {
                chunk(now);
                break;
            }
        }
    }

    private void chunk(long now) {
        chunks++;
        if (firstNanos < 0) {
            firstNanos = now;
        } else {
            if (gapCount == gaps.length) {
                gaps = Arrays.copyOf(gaps, gapCount * 2);
            }
            gaps[gapCount++] = now - lastNanos;
        }
        lastNanos = now;
    }

    /** The outcome, the answer having ended at {@code endNanos}. */
    RequestOutcome outcome(long endNanos, int expectedPrompt) {
        String why = error != null ? error : done ? null : "the stream ended without [DONE]";
        if (why != null) {
            return RequestOutcome.failed(why, endNanos - sentNanos, expectedPrompt);
        }
        return new RequestOutcome(true, null, firstNanos < 0 ? -1 : firstNanos - sentNanos,
                Arrays.copyOf(gaps, gapCount), endNanos - sentNanos, promptTokens,
                completionTokens >= 0 ? completionTokens : chunks, cachedTokens, expectedPrompt);
    }

    static String abbreviate(String s) {
        String one = s.replace('\n', ' ');
        return one.length() > 160 ? one.substring(0, 160) + "..." : one;
    }
}
