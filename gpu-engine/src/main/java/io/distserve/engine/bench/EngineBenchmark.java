package io.distserve.engine.bench;

import io.distserve.engine.FinishEvent;
import io.distserve.engine.GenerationHandle;
import io.distserve.engine.GenerationListener;
import io.distserve.engine.GenerationRequest;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Engine throughput through the real path (scheduler, backend, sampler): a batch of requests with random prompts
 * of a fixed length, greedy, ignoring EOS so every request generates exactly {@code newTokens}.
 *
 * <p>Prefill tokens/s = batch x prompt / (time until the last request's first token). Decode tokens/s =
 * batch x (newTokens - 1) / (time from the last first token to the last finish): the aggregate decode rate.
 */
public final class EngineBenchmark {

    public record Case(String model, int batch, int promptTokens, int newTokens) {
    }

    public record Result(Case c, double prefillSeconds, double decodeSeconds) {
        public double prefillTokensPerSecond() {
            return c.batch() * (double) c.promptTokens() / prefillSeconds;
        }

        public double decodeTokensPerSecond() {
            return c.batch() * (double) (c.newTokens() - 1) / decodeSeconds;
        }

        public double msPerDecodeStep() {
            return decodeSeconds * 1000 / (c.newTokens() - 1);
        }
    }

    private EngineBenchmark() {
    }

    public static Result run(LoadedModel model, Case c, long seed) throws Exception {
        if (c.newTokens() < 2) {
            throw new IllegalArgumentException("newTokens must be >= 2 to time decoding");
        }
        int vocab = ordinaryVocab(model);
        SplittableRandom random = new SplittableRandom(seed);
        SamplingParams greedy = greedyIgnoringEos(c.newTokens());
        List<GenerationHandle> handles = new ArrayList<>();
        long start = System.nanoTime();
        for (int i = 0; i < c.batch(); i++) {
            int[] prompt = random.ints(c.promptTokens(), 0, vocab).toArray();
            handles.add(model.engine().submit(new GenerationRequest("bench-" + seed + "-" + i, prompt, greedy),
                    GenerationListener.none()));
        }
        long lastFirstToken = 0;
        long lastFinish = 0;
        for (GenerationHandle h : handles) {
            FinishEvent f = h.completion().get();
            if (f.completionTokens() != c.newTokens()) {
                throw new IllegalStateException("request generated " + f.completionTokens() + " tokens, expected "
                        + c.newTokens() + " (" + f.reason() + ")");
            }
            lastFirstToken = Math.max(lastFirstToken, f.timing().timeToFirstTokenNanos());
            lastFinish = Math.max(lastFinish, f.timing().totalNanos());
        }
        // Timings are relative to each request's arrival; all arrived within microseconds of `start`.
        return new Result(c, lastFirstToken / 1e9, (lastFinish - lastFirstToken) / 1e9);
    }

    /**
     * Time to the first token of ONE prompt of {@code promptTokens} random tokens (the engine's whole prefill of
     * it, in chunks of its max prefill size), median of {@code repeats} runs; in seconds.
     */
    public static double prefillSeconds(LoadedModel model, int promptTokens, int repeats, long seed)
            throws Exception {
        int vocab = ordinaryVocab(model);
        SplittableRandom random = new SplittableRandom(seed);
        SamplingParams one = greedyIgnoringEos(1);
        double[] times = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            int[] prompt = random.ints(promptTokens, 0, vocab).toArray();
            GenerationHandle h = model.engine().submit(
                    new GenerationRequest("bench-prefill-" + seed + "-" + i, prompt, one), GenerationListener.none());
            times[i] = h.completion().get().timing().timeToFirstTokenNanos() / 1e9;
        }
        java.util.Arrays.sort(times);
        return times[repeats / 2];
    }

    /** Random prompts draw below this: added and special tokens sit at the top of the vocabulary. */
    private static int ordinaryVocab(LoadedModel model) {
        return Math.min(model.config().vocabSize(), model.tokenizer().tokenizer().vocabSize()) - 64;
    }

    /** Greedy, ignoring EOS, exactly {@code tokens} new tokens. */
    private static SamplingParams greedyIgnoringEos(int tokens) {
        return new SamplingParams(0, 1, 0, 0, 1, null, tokens, List.of(), List.of(), true, true);
    }

    public static String markdownTable(List<Result> results) {
        StringBuilder sb = new StringBuilder();
        sb.append("| model | batch | prompt | new | prefill tok/s | decode tok/s | ms / decode step |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|\n");
        for (Result r : results) {
            sb.append(String.format(Locale.ROOT, "| %s | %d | %d | %d | %.1f | %.1f | %.1f |%n", r.c().model(),
                    r.c().batch(), r.c().promptTokens(), r.c().newTokens(), r.prefillTokensPerSecond(),
                    r.decodeTokensPerSecond(), r.msPerDecodeStep()));
        }
        return sb.toString();
    }
}
