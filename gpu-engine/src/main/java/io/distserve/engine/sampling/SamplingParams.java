package io.distserve.engine.sampling;

import java.util.List;

/**
 * How to pick the next token and when to stop, per request. Validation of user input happens at ingest; the
 * canonical constructor only rejects values that would break the sampler.
 *
 * @param temperature       0 means greedy
 * @param topP              nucleus mass in (0, 1]; 1 disables
 * @param topK              keep the k most likely; 0 or less disables
 * @param minP              drop tokens below minP * p(max); 0 disables
 * @param repetitionPenalty HF-style: logits of seen tokens divided (if positive) or multiplied (if negative); 1 disables
 * @param seed              null: nondeterministic
 * @param maxTokens         tokens to generate at most
 * @param stop              stop strings (not included in the output)
 * @param stopTokenIds      stop ids (not included in the output text)
 * @param ignoreEos         keep going past EOS
 * @param skipSpecialTokens leave special tokens out of the text
 */
public record SamplingParams(
        double temperature,
        double topP,
        int topK,
        double minP,
        double repetitionPenalty,
        Long seed,
        int maxTokens,
        List<String> stop,
        List<Integer> stopTokenIds,
        boolean ignoreEos,
        boolean skipSpecialTokens) {

    public SamplingParams {
        if (temperature < 0 || Double.isNaN(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0");
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1]");
        }
        if (minP < 0 || minP > 1) {
            throw new IllegalArgumentException("min_p must be in [0, 1]");
        }
        if (!(repetitionPenalty > 0)) {
            throw new IllegalArgumentException("repetition_penalty must be > 0");
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("max_tokens must be >= 1");
        }
        stop = List.copyOf(stop);
        stopTokenIds = List.copyOf(stopTokenIds);
    }

    public static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0, 1, 0, 0, 1, null, maxTokens, List.of(), List.of(), false, true);
    }

    public boolean isGreedy() {
        return temperature == 0;
    }

    public SamplingParams withMaxTokens(int n) {
        return new SamplingParams(temperature, topP, topK, minP, repetitionPenalty, seed, n, stop, stopTokenIds,
                ignoreEos, skipSpecialTokens);
    }
}
