package io.distserve.engine.cpu;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.FinishEvent;
import io.distserve.engine.GenerationRequest;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.engine.sampling.SamplingParams;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Prefix caching on the real CPU backend: at temperature 0 the tokens are those of an engine without the cache. */
class PrefixCachingCpuTest {

    private static final int BLOCK = 16;

    @TempDir
    static Path dir;
    static LoadedModel cached;
    static LoadedModel uncached;

    @BeforeAll
    static void load() {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 3, null).withThreads(1).writeTo(model);
        EngineOptions options = new EngineOptions("cpu", BLOCK, 0.8, 128, 2, EngineConfig.defaults());
        cached = LoadedModel.load(model, options);
        uncached = LoadedModel.load(model, options.withPrefixCaching(false));
    }

    @AfterAll
    static void close() {
        cached.close();
        uncached.close();
    }

    private static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0, 1, 0, 0, 1, null, maxTokens, List.of(), List.of(), true, true);
    }

    private static int[] random(Random rnd, int n) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = 3 + rnd.nextInt(400);
        }
        return t;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void sharedSystemPromptsRepeatsAndConversationTurnsGiveTheUncachedTokens() throws Exception {
        Random rnd = new Random(5);
        int[] system = random(rnd, 70);
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            prompts.add(concat(system, random(rnd, 5 + i * 9)));
        }
        prompts.add(prompts.get(1)); // the same prompt again
        prompts.add(Arrays.copyOf(system, 64)); // exactly the cached blocks: its last token is computed
        int totalCached = 0;
        for (int i = 0; i < prompts.size(); i++) {
            GenerationRequest r = new GenerationRequest("p" + i, prompts.get(i), greedy(12));
            FinishEvent with = cached.engine().generate(r);
            FinishEvent without = uncached.engine().generate(new GenerationRequest("u" + i, prompts.get(i),
                    greedy(12)));
            assertThat(with.tokenIds()).as("prompt %d", i).containsExactly(without.tokenIds());
            totalCached += with.cachedTokens();
            if (i == prompts.size() - 1) {
                assertThat(with.cachedTokens()).isEqualTo(48); // whole blocks of at most length - 1 tokens
            } else if (i > 0) {
                assertThat(with.cachedTokens()).as("prompt %d reuses the system prompt", i).isGreaterThanOrEqualTo(64);
            }
        }
        // a conversation: turn 2 = turn 1 + its answer + a new message
        int[] turn1 = concat(system, random(rnd, 20));
        FinishEvent a1 = cached.engine().generate(new GenerationRequest("t1", turn1, greedy(30)));
        int[] turn2 = concat(concat(turn1, a1.tokenIds()), random(rnd, 11));
        FinishEvent with = cached.engine().generate(new GenerationRequest("t2", turn2, greedy(12)));
        FinishEvent without = uncached.engine().generate(new GenerationRequest("t2u", turn2, greedy(12)));
        assertThat(with.tokenIds()).containsExactly(without.tokenIds());
        assertThat(with.cachedTokens()).isEqualTo((turn1.length + a1.tokenIds().length - 1) / BLOCK * BLOCK);
        assertThat(totalCached).isPositive();
        assertThat(cached.engine().stats().blocksUsed()).isZero();
    }
}
