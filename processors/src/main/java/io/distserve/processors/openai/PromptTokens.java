package io.distserve.processors.openai;

import io.distserve.engine.tokenizer.ChatTemplateException;
import io.distserve.engine.tokenizer.ModelTokenizer;

/**
 * A validated request's prompt as token ids: the chat template for chat, the ids as given, or the encoded text.
 * The engine runs what this returns; the proxy's {@code kv_aware} routing computes the same ids to find the node
 * that already holds their KV.
 */
public final class PromptTokens {

    private PromptTokens() {
    }

    /**
     * @param vocabSize the model's vocabulary (ids at or beyond it, or beyond the tokenizer's, are refused)
     * @throws OpenAiException 400 for a prompt the model cannot take
     */
    public static int[] of(InferenceRequest request, ModelTokenizer tokenizer, int vocabSize) {
        if (request.kind() == RequestKind.CHAT) {
            if (!tokenizer.hasChatTemplate()) {
                throw OpenAiException.badRequest("messages",
                        "This model has no chat template; use /v1/completions.");
            }
            try {
                return tokenizer.encodeChat(request.messages(), true, request.chatTemplateKwargs());
            } catch (ChatTemplateException e) {
                throw OpenAiException.badRequest("messages", "The chat template failed: " + e.getMessage());
            }
        }
        if (request.promptTokenIds() != null) {
            int[] ids = request.promptTokenIds();
            // The model's vocabulary is often padded beyond the tokenizer's (TINY: 448 vs 444; Qwen3: 151936 vs
            // 151669): an id in the padding has an embedding but no text, and fails the engine's detokenizer.
            int known = Math.min(vocabSize, tokenizer.tokenizer().vocabSize());
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] >= known) {
                    throw OpenAiException.badRequest("prompt", "Token id " + ids[i] + " at position " + i
                            + " is outside the vocabulary (size " + known + ").");
                }
            }
            return ids;
        }
        int[] ids = tokenizer.encodePrompt(request.promptText());
        if (ids.length == 0) {
            throw OpenAiException.badRequest("prompt", "The prompt encodes to no tokens.");
        }
        return ids;
    }
}
