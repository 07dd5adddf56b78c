package io.distserve.processors.disagg;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.processors.openai.OpenAiException;
import java.util.HashSet;
import java.util.Set;

/**
 * The {@code migration_request} a proxy adds to a request for a Decode engine: where the prompt's KV blocks are and
 * what the prefill produced. Parsed defensively: it comes over the network and a hostile or buggy one must end in a
 * 400, never reach the engine (LMDeploy's decode loop died on one, their #4965).
 */
public record MigrationRequest(String protocol, String remoteEngineId, String remoteSessionId, int[] remoteBlockIds,
                               int remoteTokenId, int[] promptTokenIds, int cachedTokens) {

    private static final String P = "migration_request";

    /** Shape and type checks only; bounds against the peer and the model are {@link MigrationService}'s. */
    public static MigrationRequest parse(JsonNode node) {
        if (node == null || !node.isObject()) {
            throw OpenAiException.badRequest(P, "'migration_request' must be an object.");
        }
        String protocol = text(node, "protocol");
        String engineId = text(node, "remote_engine_id");
        String sessionId = text(node, "remote_session_id");
        int[] blocks = ints(node, "remote_block_ids");
        if (blocks.length == 0) {
            throw bad("remote_block_ids", "must not be empty");
        }
        Set<Integer> seen = new HashSet<>();
        for (int b : blocks) {
            if (!seen.add(b)) {
                throw bad("remote_block_ids", "has block " + b + " twice");
            }
        }
        JsonNode token = node.get("remote_token_id");
        if (token == null || !token.isIntegralNumber() || !token.canConvertToInt() || token.asInt() < 0) {
            throw bad("remote_token_id", "must be a non-negative integer");
        }
        int[] prompt = ints(node, "prompt_token_ids");
        if (prompt.length == 0) {
            throw bad("prompt_token_ids", "must not be empty");
        }
        JsonNode cached = node.get("cached_tokens"); // optional: the prefill engine's prefix-cache reuse, for usage
        if (cached != null && (!cached.isIntegralNumber() || !cached.canConvertToInt() || cached.asInt() < 0
                || cached.asInt() > prompt.length)) {
            throw bad("cached_tokens", "must be an integer in [0, " + prompt.length + "]");
        }
        return new MigrationRequest(protocol, engineId, sessionId, blocks, token.asInt(), prompt,
                cached == null ? 0 : cached.asInt());
    }

    private static String text(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || !v.isTextual() || v.asText().isBlank()) {
            throw bad(field, "must be a non-empty string");
        }
        return v.asText();
    }

    private static int[] ints(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || !v.isArray()) {
            throw bad(field, "must be a list of non-negative integers");
        }
        if (v.size() > 1_000_000) {
            throw bad(field, "is too long (" + v.size() + " elements)");
        }
        int[] out = new int[v.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode e = v.get(i);
            if (!e.isIntegralNumber() || !e.canConvertToInt() || e.asInt() < 0) {
                throw bad(field, "must be a list of non-negative integers; element " + i + " is " + e);
            }
            out[i] = e.asInt();
        }
        return out;
    }

    static OpenAiException bad(String field, String problem) {
        return OpenAiException.badRequest(P + "." + field, "migration_request." + field + " " + problem + ".");
    }
}
