package io.distserve.processors.proxy;

/**
 * Cheap reading and rewriting of our engines' stream chunks, on the proxy's hot path (no JSON tree per chunk):
 * the token ids a chunk carries with {@code return_token_ids}, and the chunk as the client should see it. The
 * chunks are Jackson's output of {@code OpenAiResponses}, compact, so the fields are found as written.
 */
final class StreamChunks {

    private static final String TOKEN_IDS = ",\"token_ids\":[";
    private static final String PROMPT_IDS = ",\"prompt_token_ids\":[";

    private StreamChunks() {
    }

    /** The ids of {@code "token_ids":[...]}; empty when the chunk has none. */
    static int[] tokenIds(String payload) {
        int at = payload.indexOf(TOKEN_IDS);
        if (at < 0) {
            return new int[0];
        }
        int from = at + TOKEN_IDS.length();
        int end = payload.indexOf(']', from);
        if (end <= from) {
            return new int[0];
        }
        String[] parts = payload.substring(from, end).split(",");
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            ids[i] = Integer.parseInt(parts[i].trim());
        }
        return ids;
    }

    /** The chunk without the id fields the proxy asked for and the client did not. */
    static String withoutIds(String payload) {
        return remove(remove(payload, TOKEN_IDS), PROMPT_IDS);
    }

    private static String remove(String payload, String field) {
        int at = payload.indexOf(field);
        if (at < 0) {
            return payload;
        }
        int end = payload.indexOf(']', at + field.length());
        return end < 0 ? payload : payload.substring(0, at) + payload.substring(end + 1);
    }

    /** True for a chunk that says nothing to a client that did not ask for ids: no text, no finish, no usage. */
    static boolean isEmpty(String payload) {
        return (payload.contains("\"text\":\"\"") || payload.contains("\"content\":\"\"")
                || payload.contains("\"delta\":{}")) && payload.contains("\"finish_reason\":null")
                && !payload.contains("\"usage\"") && !payload.contains("\"role\"");
    }

    /** The chunk's {@code "id"} value; null when none. */
    static String id(String payload) {
        int at = payload.indexOf("\"id\":\"");
        if (at < 0) {
            return null;
        }
        int from = at + 6;
        int end = payload.indexOf('"', from);
        return end < 0 ? null : payload.substring(from, end);
    }

    /**
     * A chunk of the node a stream moved to, as part of the stream the client has: the first node's id and
     * creation time, and no second assistant role.
     */
    static String continuing(String payload, String streamId, String created) {
        String id = id(payload);
        String out = id == null || streamId == null ? payload
                : payload.replace("\"id\":\"" + id + "\"", "\"id\":\"" + streamId + "\"");
        if (created != null) {
            out = out.replaceFirst("\"created\":\\d+", "\"created\":" + created);
        }
        return out.replace("\"role\":\"assistant\",", "").replace("{\"role\":\"assistant\"}", "{}");
    }

    /** The chunk's {@code "created"} value as written; null when none. */
    static String created(String payload) {
        int at = payload.indexOf("\"created\":");
        if (at < 0) {
            return null;
        }
        int from = at + 10;
        int end = from;
        while (end < payload.length() && Character.isDigit(payload.charAt(end))) {
            end++;
        }
        return end == from ? null : payload.substring(from, end);
    }

    /** A top-level SSE error event (a node's generation failed mid-stream). */
    static boolean isError(String payload) {
        return payload.startsWith("{\"error\"");
    }
}
