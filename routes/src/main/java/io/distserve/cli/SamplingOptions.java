package io.distserve.cli;

import io.distserve.engine.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;

/** Sampling flags of {@code distserve generate}, with OpenAI's names. */
final class SamplingOptions {

    @Option(names = "--max-tokens", defaultValue = "64", description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 is greedy (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1", description = "Nucleus mass in (0, 1] (default: ${DEFAULT-VALUE}).")
    double topP;

    @Option(names = "--top-k", defaultValue = "0", description = "Keep the k most likely; 0 is off (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--min-p", defaultValue = "0", description = "Drop tokens below min-p x p(max) (default: ${DEFAULT-VALUE}).")
    double minP;

    @Option(names = "--repetition-penalty", defaultValue = "1", description = "1 is off (default: ${DEFAULT-VALUE}).")
    double repetitionPenalty;

    @Option(names = "--seed", description = "Seed for sampling (same seed, same output).")
    Long seed;

    @Option(names = "--stop", description = "Stop string (repeatable).")
    List<String> stop = new ArrayList<>();

    @Option(names = "--ignore-eos", description = "Keep generating past end-of-sequence.")
    boolean ignoreEos;

    /** @throws IllegalArgumentException with the sampler's own message for an invalid combination */
    SamplingParams toParams() {
        return new SamplingParams(temperature, topP, topK, minP, repetitionPenalty, seed, maxTokens, stop, List.of(),
                ignoreEos, true);
    }
}
