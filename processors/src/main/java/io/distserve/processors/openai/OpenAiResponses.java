package io.distserve.processors.openai;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * OpenAI response bodies: whole responses, stream chunks, usage, errors. One place, so that the engine node and the
 * proxy answer in exactly the same shapes.
 */
public final class OpenAiResponses {

    private final ObjectMapper json;

    public OpenAiResponses(ObjectMapper json) {
        this.json = json;
    }

    public ObjectMapper json() {
        return json;
    }

    /** A whole (non-streamed) completion or chat response. */
    public ObjectNode response(RequestKind kind, String id, long created, String model, String text,
                               String finishReason, int promptTokens, int completionTokens, int cachedTokens) {
        ObjectNode root = header(id, kind.objectName(), created, model);
        ObjectNode choice = root.putArray("choices").addObject();
        choice.put("index", 0);
        if (kind == RequestKind.CHAT) {
            ObjectNode message = choice.putObject("message");
            message.put("role", "assistant");
            message.put("content", text);
        } else {
            choice.put("text", text);
        }
        choice.putNull("logprobs");
        choice.put("finish_reason", finishReason);
        root.set("usage", usage(promptTokens, completionTokens, cachedTokens));
        return root;
    }

    /**
     * A stream chunk carrying a text delta and, on the last one, the finish reason. The first chat chunk carries
     * the assistant role.
     */
    public ObjectNode chunk(RequestKind kind, String id, long created, String model, String delta, boolean first,
                            String finishReason) {
        ObjectNode root = header(id, kind.chunkObjectName(), created, model);
        ObjectNode choice = root.putArray("choices").addObject();
        choice.put("index", 0);
        if (kind == RequestKind.CHAT) {
            ObjectNode d = choice.putObject("delta");
            if (first) {
                d.put("role", "assistant");
            }
            if (delta != null) {
                d.put("content", delta);
            }
        } else {
            choice.put("text", delta == null ? "" : delta);
        }
        choice.putNull("logprobs");
        if (finishReason == null) {
            choice.putNull("finish_reason");
        } else {
            choice.put("finish_reason", finishReason);
        }
        return root;
    }

    /** The final usage chunk of stream_options.include_usage: no choices, only usage. */
    public ObjectNode usageChunk(RequestKind kind, String id, long created, String model, int promptTokens,
                                 int completionTokens, int cachedTokens) {
        ObjectNode root = header(id, kind.chunkObjectName(), created, model);
        root.putArray("choices");
        root.set("usage", usage(promptTokens, completionTokens, cachedTokens));
        return root;
    }

    /**
     * OpenAI's usage object; {@code prompt_tokens_details.cached_tokens} counts the prompt tokens whose KV came from
     * the prefix cache (OpenAI's field for the same thing).
     */
    public ObjectNode usage(int promptTokens, int completionTokens, int cachedTokens) {
        ObjectNode usage = json.createObjectNode();
        usage.put("prompt_tokens", promptTokens);
        usage.put("completion_tokens", completionTokens);
        usage.put("total_tokens", promptTokens + completionTokens);
        usage.putObject("prompt_tokens_details").put("cached_tokens", Math.max(0, cachedTokens));
        return usage;
    }

    /** {@code {"error":{"message","type","param","code"}}}. */
    public ObjectNode error(OpenAiException e) {
        ObjectNode root = json.createObjectNode();
        ObjectNode error = root.putObject("error");
        error.put("message", e.getMessage());
        error.put("type", e.type());
        if (e.param() == null) {
            error.putNull("param");
        } else {
            error.put("param", e.param());
        }
        if (e.code() == null) {
            error.putNull("code");
        } else {
            error.put("code", e.code());
        }
        return root;
    }

    /** {@code GET /v1/models}. */
    public ObjectNode models(Iterable<String> modelNames, long created, String ownedBy) {
        ObjectNode root = json.createObjectNode();
        root.put("object", "list");
        ArrayNode data = root.putArray("data");
        for (String name : modelNames) {
            ObjectNode m = data.addObject();
            m.put("id", name);
            m.put("object", "model");
            m.put("created", created);
            m.put("owned_by", ownedBy);
        }
        return root;
    }

    private ObjectNode header(String id, String object, long created, String model) {
        ObjectNode root = json.createObjectNode();
        root.put("id", id);
        root.put("object", object);
        root.put("created", created);
        root.put("model", model);
        return root;
    }
}
