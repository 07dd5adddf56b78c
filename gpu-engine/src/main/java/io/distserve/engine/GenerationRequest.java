package io.distserve.engine;

import io.distserve.engine.sampling.SamplingParams;
import java.util.Objects;

/**
 * One generation job: an already tokenized prompt (chat templates and tokenization happen before the engine).
 *
 * @param requestId unique among the engine's live requests; used by {@link LlmEngine#abort(String)}
 */
public record GenerationRequest(String requestId, int[] promptTokens, SamplingParams params) {

    public GenerationRequest {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(promptTokens, "promptTokens");
        Objects.requireNonNull(params, "params");
        if (requestId.isBlank()) {
            throw new IllegalArgumentException("requestId must not be blank");
        }
        promptTokens = promptTokens.clone();
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }
}
