package io.distserve.engine.sampling;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SamplerTest {

    private final Sampler sampler = new Sampler();

    private static SamplingParams params(double temperature, double topP, int topK, double minP, double penalty,
            Long seed) {
        return new SamplingParams(temperature, topP, topK, minP, penalty, seed, 16, List.of(), List.of(), false,
                true);
    }

    private int sample(float[] logits, SamplingParams p, long seed) {
        return sampler.sample(logits.clone(), p, new int[0], 0, new SplittableRandom(seed));
    }

    /** Distinct tokens seen over many draws with one generator. */
    private Set<Integer> support(float[] logits, SamplingParams p, int draws) {
        SplittableRandom rng = new SplittableRandom(7);
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < draws; i++) {
            seen.add(sampler.sample(logits.clone(), p, new int[0], 0, rng));
        }
        return seen;
    }

    @Test
    void greedyTakesTheArgmaxAndTheLowestIdOnTies() {
        SamplingParams greedy = SamplingParams.greedy(4);
        assertThat(sample(new float[] {0.1f, 3f, -2f, 2.9f}, greedy, 1)).isEqualTo(1);
        assertThat(sample(new float[] {1f, 5f, 5f, 5f}, greedy, 1)).isEqualTo(1);
        assertThat(sample(new float[] {Float.NaN, -1f, Float.NaN}, greedy, 1)).isEqualTo(1);
        assertThatThrownBy(() -> sample(new float[] {Float.NaN, Float.NaN}, greedy, 1))
                .isInstanceOf(IllegalStateException.class);
    }

    @Test
    void greedyTokenIsWhatPlainGreedySamplingPicksAndMinusOneForAnUnusableRow() {
        float[][] rows = {{0.1f, 3f, -2f, 2.9f}, {1f, 5f, 5f, 5f}, {Float.NaN, -1f, Float.NaN},
                {Float.NaN, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}, {Float.NEGATIVE_INFINITY, 2f}};
        SamplingParams greedy = SamplingParams.greedy(4);
        assertThat(Sampler.isPlainGreedy(greedy)).isTrue();
        for (float[] row : rows) {
            assertThat(Sampler.greedyToken(row)).isEqualTo(sample(row, greedy, 1));
        }
        assertThat(Sampler.greedyToken(new float[] {Float.NaN, Float.NaN})).isEqualTo(-1);
        assertThat(Sampler.isPlainGreedy(params(0, 1, 0, 0, 1.1, null))).isFalse();
        assertThat(Sampler.isPlainGreedy(params(0.7, 1, 0, 0, 1, null))).isFalse();
    }

    @Test
    void repetitionPenaltyFollowsHfSemanticsOncePerDistinctToken() {
        float[] logits = {4f, -1f, 3.5f, 0f};
        // Token 0 seen twice: divided once (4 -> 2), token 1 negative: multiplied (-1 -> -2).
        Sampler.applyRepetitionPenalty(logits, new int[] {0, 1, 0, 9}, 3, 2f);
        assertThat(logits).containsExactly(2f, -2f, 3.5f, 0f);
        // Greedy now prefers the unseen token 2.
        SamplingParams p = params(0, 1, 0, 0, 2.0, null);
        assertThat(sampler.sample(new float[] {4f, -1f, 3.5f, 0f}, p, new int[] {0}, 1, new SplittableRandom(1)))
                .isEqualTo(2);
        // Only the first historyLength entries count.
        assertThat(sampler.sample(new float[] {4f, -1f, 3.5f, 0f}, p, new int[] {2, 0}, 1, new SplittableRandom(1)))
                .isEqualTo(0);
    }

    @Test
    void topKKeepsOnlyTheKBest() {
        float[] logits = {1f, 2f, 3f, 4f, 5f, 0f};
        assertThat(support(logits, params(1, 1, 2, 0, 1, null), 2000)).containsExactlyInAnyOrder(3, 4);
        assertThat(support(logits, params(1, 1, 1, 0, 1, null), 200)).containsExactly(4);
        // Ties at the cut: the lower id wins the last slot.
        assertThat(support(new float[] {1f, 3f, 3f, 3f}, params(1, 1, 2, 0, 1, null), 2000))
                .containsExactlyInAnyOrder(1, 2);
    }

    @Test
    void topPKeepsTheSmallestPrefixReachingTheMass() {
        // probs ~ {0.643, 0.237, 0.087, 0.032}: 0.643 < 0.7, so the first two are needed.
        float[] logits = {3f, 2f, 1f, 0f};
        assertThat(support(logits, params(1, 0.7, 0, 0, 1, null), 3000)).containsExactlyInAnyOrder(0, 1);
        assertThat(support(logits, params(1, 0.5, 0, 0, 1, null), 500)).containsExactly(0);
        assertThat(support(logits, params(1, 0.9, 0, 0, 1, null), 3000)).containsExactlyInAnyOrder(0, 1, 2);
        // Combined with top-k, the nucleus is taken over the top-k distribution (renormalised).
        assertThat(support(logits, params(1, 0.7, 3, 0, 1, null), 3000)).containsExactlyInAnyOrder(0, 1);
        // Ties at the cut: the lower ids come first in the nucleus.
        assertThat(support(new float[] {0f, 3f, 3f, 3f}, params(1, 0.5, 0, 0, 1, null), 3000))
                .containsExactlyInAnyOrder(1, 2);
        // A tiny top-p keeps at least the best token.
        assertThat(support(logits, params(1, 1e-9, 0, 0, 1, null), 200)).containsExactly(0);
    }

    @Test
    void minPDropsTokensBelowAFractionOfTheBest() {
        float[] logits = {3f, 2f, 1f, 0f}; // ratios to the best: 1, 0.37, 0.135, 0.05
        assertThat(support(logits, params(1, 1, 0, 0.3, 1, null), 3000)).containsExactlyInAnyOrder(0, 1);
        assertThat(support(logits, params(1, 1, 0, 0.1, 1, null), 3000)).containsExactlyInAnyOrder(0, 1, 2);
        assertThat(support(logits, params(1, 1, 0, 0.5, 1, null), 300)).containsExactly(0);
        assertThat(support(logits, params(1, 1, 3, 0.3, 1, null), 3000)).containsExactlyInAnyOrder(0, 1);
        assertThat(support(logits, params(1, 0.99, 0, 0.3, 1, null), 3000)).containsExactlyInAnyOrder(0, 1);
    }

    @Test
    void lowTemperatureSharpensAndHighTemperatureFlattens() {
        float[] logits = {2f, 1f, 0f};
        assertThat(support(logits, params(0.01, 1, 0, 0, 1, null), 500)).containsExactly(0);
        assertThat(support(logits, params(100, 1, 0, 0, 1, null), 500)).containsExactlyInAnyOrder(0, 1, 2);
    }

    @Test
    void theSameSeedGivesTheSameTokens() {
        SplittableRandom seeds = new SplittableRandom(3);
        float[] logits = new float[1000];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) seeds.nextGaussian() * 2;
        }
        for (SamplingParams p : List.of(params(0.8, 1, 0, 0, 1, 42L), params(0.8, 0.9, 0, 0, 1, 42L),
                params(0.8, 0.9, 40, 0.05, 1.2, 42L))) {
            int[] a = draws(logits, p, 42, 200);
            int[] b = draws(logits, p, 42, 200);
            int[] c = draws(logits, p, 43, 200);
            assertThat(a).containsExactly(b);
            assertThat(a).isNotEqualTo(c);
        }
    }

    private int[] draws(float[] logits, SamplingParams p, long seed, int n) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] out = new int[n];
        int[] history = {1, 2, 3};
        for (int i = 0; i < n; i++) {
            out[i] = sampler.sample(logits.clone(), p, history, history.length, rng);
        }
        return out;
    }

    @Test
    void temperatureOneFrequenciesMatchTheSoftmax() {
        float[] logits = {1.5f, 0.5f, 0f, -1f, 2f, 1f};
        double[] softmax = softmax(logits, 1.0);
        int n = 60_000;
        int[] counts = new int[logits.length];
        SplittableRandom rng = new SplittableRandom(2024); // fixed seed: the test cannot flake
        for (int i = 0; i < n; i++) {
            counts[sampler.sample(logits.clone(), params(1, 1, 0, 0, 1, null), new int[0], 0, rng)]++;
        }
        for (int t = 0; t < logits.length; t++) {
            // ~6 standard deviations at n = 60k (sd <= 0.002)
            assertThat(counts[t] / (double) n).as("token %d", t).isCloseTo(softmax[t], within(0.012));
        }
        // The same through the top-k path (k covering everything but the worst token, renormalised).
        Arrays.fill(counts, 0);
        double[] topk = softmax(new float[] {1.5f, 0.5f, 0f, Float.NEGATIVE_INFINITY, 2f, 1f}, 1.0);
        for (int i = 0; i < n; i++) {
            counts[sampler.sample(logits.clone(), params(1, 1, 5, 0, 1, null), new int[0], 0, rng)]++;
        }
        for (int t = 0; t < logits.length; t++) {
            assertThat(counts[t] / (double) n).as("top-k token %d", t).isCloseTo(topk[t], within(0.012));
        }
    }

    private static double[] softmax(float[] logits, double temperature) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            p[i] = Math.exp((logits[i] - max) / temperature);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    @Test
    void wideVocabularyNucleusEqualsTheBruteForceNucleus() {
        int vocab = 151_936;
        SplittableRandom gen = new SplittableRandom(11);
        float[] logits = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            logits[i] = (float) (gen.nextGaussian() * 3);
        }
        double topP = 0.9;
        double temperature = 0.7;
        // Brute force: sort everything, take the prefix reaching topP.
        double[] p = softmax(logits, temperature);
        Integer[] order = new Integer[vocab];
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> p[a] != p[b] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        Set<Integer> nucleus = new HashSet<>();
        double cum = 0;
        for (int i = 0; i < vocab && cum < topP - 1e-6; i++) {
            nucleus.add(order[i]);
            cum += p[order[i]];
        }
        SamplingParams params = params(temperature, topP, 0, 0, 1, 5L);
        SplittableRandom rng = new SplittableRandom(5);
        for (int i = 0; i < 300; i++) {
            int t = sampler.sample(logits.clone(), params, new int[0], 0, rng);
            assertThat(nucleus).contains(t);
        }
        // And top-k on the wide row picks from the k best.
        Set<Integer> best50 = new HashSet<>(Arrays.asList(order).subList(0, 50));
        SamplingParams k50 = params(1.0, 1, 50, 0, 1, 5L);
        for (int i = 0; i < 300; i++) {
            assertThat(best50).contains(sampler.sample(logits.clone(), k50, new int[0], 0, rng));
        }
    }

    @Test
    void packedKeysOrderByValueThenLowerIdFirst() {
        long a = Sampler.pack(-1.5f, 7);
        assertThat(Sampler.unpackId(a)).isEqualTo(7);
        assertThat(Sampler.unpackValue(a)).isEqualTo(-1.5f);
        assertThat(Sampler.pack(2f, 3)).isGreaterThan(Sampler.pack(-2f, 3));
        assertThat(Sampler.pack(-1f, 3)).isGreaterThan(Sampler.pack(-2f, 1));
        assertThat(Sampler.pack(1f, 3)).isGreaterThan(Sampler.pack(1f, 4)); // same value: lower id ranks higher
        assertThat(Sampler.pack(0f, 3)).isEqualTo(Sampler.pack(-0f, 3));
    }
}
