package io.distserve.processors.openai;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.tokenizer.ChatMessage;
import java.util.List;

/**
 * A validated OpenAI completion or chat request.
 *
 * @param kind            which endpoint
 * @param model           the requested model name, or null when the client named none
 * @param promptText      completions: the prompt as text (null when given as token ids, and for chat)
 * @param promptTokenIds  completions: the prompt as token ids (null when given as text, and for chat)
 * @param messages        chat: the conversation (empty for completions)
 * @param sampling        sampling and stop settings; {@code maxTokens} is the client's, or null-equivalent
 *                        {@link #maxTokensGiven} false when the client gave none
 * @param maxTokensGiven  whether the client set max_tokens / max_completion_tokens
 * @param stream          SSE streaming
 * @param includeUsage    stream_options.include_usage
 * @param chatTemplateKwargs extra variables for the chat template (e.g. enable_thinking)
 * @param body            the request as received (forwarded as is by the proxy)
 */
public record InferenceRequest(
        RequestKind kind,
        String model,
        String promptText,
        int[] promptTokenIds,
        List<ChatMessage> messages,
        SamplingParams sampling,
        boolean maxTokensGiven,
        boolean stream,
        boolean includeUsage,
        java.util.Map<String, Object> chatTemplateKwargs,
        ObjectNode body) {

    /** {@code return_token_ids} (vLLM's field): the answer carries its token ids, and a stream a chunk per token. */
    public boolean returnTokenIds() {
        return body.path("return_token_ids").asBoolean(false);
    }

    /**
     * {@code resume_token_ids}: the answer's first tokens, generated elsewhere and already delivered; the engine goes
     * on from them (the proxy's way of moving a stream off a failed node). Empty when absent.
     */
    public int[] resumeTokenIds() {
        com.fasterxml.jackson.databind.JsonNode n = body.get("resume_token_ids");
        if (n == null || !n.isArray()) {
            return new int[0];
        }
        int[] out = new int[n.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = n.get(i).asInt();
        }
        return out;
    }

    public InferenceRequest {
        messages = List.copyOf(messages);
        chatTemplateKwargs = java.util.Map.copyOf(chatTemplateKwargs);
    }
}
