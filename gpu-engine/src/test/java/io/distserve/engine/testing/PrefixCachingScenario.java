package io.distserve.engine.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.engine.FinishEvent;
import io.distserve.engine.GenerationRequest;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * The prefix-caching equivalence every backend must pass: a shared system prompt, repeats, a prompt of exactly the
 * cached blocks, and a conversation's next turn give at temperature 0 the tokens of an engine without the cache,
 * while reporting the reuse.
 */
public final class PrefixCachingScenario {

    private PrefixCachingScenario() {
    }

    private static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0, 1, 0, 0, 1, null, maxTokens, List.of(), List.of(), true, true);
    }

    private static int[] random(Random rnd, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = 3 + rnd.nextInt(vocab - 3);
        }
        return t;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /**
     * @param block  the engines' block size
     * @param system the shared prompt's length: a multiple of {@code block}, at least two blocks
     * @param vocab  token ids are drawn from [3, vocab)
     */
    public static void run(LoadedModel cached, LoadedModel uncached, int block, int system, int vocab)
            throws InterruptedException {
        Random rnd = new Random(5);
        int[] shared = random(rnd, system + 6, vocab);
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            prompts.add(concat(shared, random(rnd, 5 + i * 9, vocab)));
        }
        prompts.add(prompts.get(1)); // the same prompt again
        prompts.add(Arrays.copyOf(shared, system)); // exactly whole blocks: its last token is computed
        for (int i = 0; i < prompts.size(); i++) {
            FinishEvent with = cached.engine().generate(new GenerationRequest("p" + i, prompts.get(i), greedy(12)));
            FinishEvent without = uncached.engine().generate(new GenerationRequest("u" + i, prompts.get(i),
                    greedy(12)));
            assertThat(with.tokenIds()).as("prompt %d", i).containsExactly(without.tokenIds());
            if (i == prompts.size() - 1) {
                assertThat(with.cachedTokens()).isEqualTo(system - block); // whole blocks of at most length - 1
            } else if (i > 0) {
                assertThat(with.cachedTokens()).as("prompt %d reuses the shared prompt", i)
                        .isGreaterThanOrEqualTo(system);
            }
            assertThat(without.cachedTokens()).isZero();
        }
        // a conversation: turn 2 = turn 1 + its answer + a new message
        int[] turn1 = concat(shared, random(rnd, 20, vocab));
        FinishEvent a1 = cached.engine().generate(new GenerationRequest("t1", turn1, greedy(30)));
        int[] turn2 = concat(concat(turn1, a1.tokenIds()), random(rnd, 11, vocab));
        FinishEvent with = cached.engine().generate(new GenerationRequest("t2", turn2, greedy(12)));
        FinishEvent without = uncached.engine().generate(new GenerationRequest("t2u", turn2, greedy(12)));
        assertThat(with.tokenIds()).containsExactly(without.tokenIds());
        assertThat(with.cachedTokens()).isEqualTo((turn1.length + a1.tokenIds().length - 1) / block * block);
        assertThat(cached.engine().stats().blocksUsed()).isZero();
        assertThat(cached.engine().stats().prefixHitTokens()).isPositive();
    }
}
