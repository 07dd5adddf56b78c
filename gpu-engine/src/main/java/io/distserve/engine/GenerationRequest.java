package io.distserve.engine;

import io.distserve.engine.sampling.SamplingParams;
import java.util.Objects;

/**
 * One generation job: an already tokenized prompt (chat templates and tokenization happen before the engine).
 *
 * @param requestId    unique among the engine's live requests; used by {@link LlmEngine#abort(String)}
 * @param resumeTokens the answer's first tokens, generated elsewhere and already delivered (a stream that moves
 *                     from a failed node): the engine computes their K/V with the prompt's and goes on from them; they
 *                     count against max_tokens and their text is not produced again (empty: a new answer)
 */
public record GenerationRequest(String requestId, int[] promptTokens, SamplingParams params, int[] resumeTokens) {

    public GenerationRequest {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(promptTokens, "promptTokens");
        Objects.requireNonNull(params, "params");
        if (requestId.isBlank()) {
            throw new IllegalArgumentException("requestId must not be blank");
        }
        promptTokens = promptTokens.clone();
        resumeTokens = resumeTokens == null ? new int[0] : resumeTokens.clone();
    }

    /** A new answer. */
    public GenerationRequest(String requestId, int[] promptTokens, SamplingParams params) {
        this(requestId, promptTokens, params, null);
    }

    @Override
    public int[] resumeTokens() {
        return resumeTokens.clone();
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }
}
