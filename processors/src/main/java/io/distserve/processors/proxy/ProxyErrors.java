package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.openai.OpenAiResponses;

/** Errors inside an open client stream: an SSE error event (OpenAI's error body), the stream then ends. */
final class ProxyErrors {

    private ProxyErrors() {
    }

    static void sendStreamError(SseResponse sse, ObjectMapper json, String message) {
        sendStreamError(sse, json, new OpenAiException(503, "service_unavailable", null, "upstream_failed", message));
    }

    static void sendStreamError(SseResponse sse, ObjectMapper json, OpenAiException error) {
        try {
            sse.send(json.writeValueAsString(new OpenAiResponses(json).error(error)));
        } catch (Exception ignored) {
            // the client is gone: nothing to tell
        }
    }
}
