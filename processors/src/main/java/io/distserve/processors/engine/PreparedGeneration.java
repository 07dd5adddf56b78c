package io.distserve.processors.engine;

import io.distserve.engine.GenerationRequest;
import io.distserve.processors.openai.InferenceRequest;

/**
 * A request ready for the engine: the validated OpenAI request, its id and creation time (as the client will see
 * them), and the engine request with the prompt tokenized and max_tokens resolved against the context.
 */
public record PreparedGeneration(InferenceRequest request, String id, long createdEpochSeconds,
                                 GenerationRequest generation) {

    public int promptTokens() {
        return generation.promptTokens().length;
    }
}
