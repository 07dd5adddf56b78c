package io.distserve.processors.proxy;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/** Reads an upstream Server-Sent Events body one {@code data:} payload at a time. */
final class SseRelay {

    /** What to do with each payload; return false to stop reading. */
    interface PayloadHandler {
        boolean onData(String payload) throws IOException;
    }

    /** The payload that ends an OpenAI stream. */
    static final String DONE = "[DONE]";

    private SseRelay() {
    }

    /** The payload of an SSE line; null for the lines that carry none (blank separators, comments, event names). */
    static String payload(String line) {
        return line.startsWith("data:") ? line.substring(5).strip() : null;
    }

    /**
     * Reads until {@code [DONE]}, the end of the stream, or the handler says stop.
     *
     * @return true when the upstream ended with {@code [DONE]}
     */
    static boolean read(InputStream body, PayloadHandler handler) throws IOException {
        BufferedReader reader = new BufferedReader(new InputStreamReader(body, StandardCharsets.UTF_8));
        String line;
        while ((line = reader.readLine()) != null) {
            String payload = payload(line);
            if (payload == null) {
                continue;
            }
            if (payload.equals(DONE)) {
                return true;
            }
            if (!handler.onData(payload)) {
                return false;
            }
        }
        return false;
    }
}
