package io.distserve.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * One request of a dataset: a prompt (token ids, or text), optionally a shared system prompt (chat), and how many
 * tokens to generate.
 *
 * @param promptIds      the prompt as token ids (completions: the server's count is exactly their number), or null
 * @param promptText     the prompt as text (chat, ShareGPT), or null
 * @param systemText     a system prompt (prefix-repeat over chat), or null
 * @param promptTokens   the prompt's length in tokens as the dataset counted it
 * @param outputTokens   max_tokens
 */
public record BenchRequest(int[] promptIds, String promptText, String systemText, int promptTokens,
                           int outputTokens) {

    /** The OpenAI body of this request for {@code endpoint} (always streamed, usage included, greedy). */
    public ObjectNode body(ObjectMapper json, String endpoint, String model, boolean ignoreEos) {
        ObjectNode b = json.createObjectNode();
        b.put("model", model);
        if (endpoint.endsWith("/chat/completions")) {
            ArrayNode messages = b.putArray("messages");
            if (systemText != null) {
                messages.addObject().put("role", "system").put("content", systemText);
            }
            messages.addObject().put("role", "user").put("content", promptText);
        } else if (promptIds != null) {
            ArrayNode ids = b.putArray("prompt");
            for (int id : promptIds) {
                ids.add(id);
            }
        } else {
            b.put("prompt", (systemText == null ? "" : systemText) + promptText);
        }
        b.put("max_tokens", outputTokens);
        b.put("temperature", 0);
        if (ignoreEos) {
            b.put("ignore_eos", true);
        }
        b.put("stream", true);
        b.putObject("stream_options").put("include_usage", true);
        return b;
    }
}
