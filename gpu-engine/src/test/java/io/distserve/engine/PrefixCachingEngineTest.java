package io.distserve.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.kv.PrefixHasher;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.tokenizer.TextTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The engine with a prefix cache, on a backend that really reads its K/V back through the block tables
 * ({@link FakeBackend}): a wrong cached block, or one written while shared, changes the tokens.
 */
class PrefixCachingEngineTest {

    private static final int VOCAB = 97;
    private static final int EOS = 96;
    private static final int BS = 4;
    private static final TextTokenizer TOK = FakeTokenizers.chars(VOCAB, EOS);

    private final List<LlmEngine> engines = new ArrayList<>();
    private final List<BlockManager> pools = new ArrayList<>();

    private record Engine(LlmEngine engine, FakeBackend backend, BlockManager blocks) {
    }

    private Engine engine(int numBlocks, boolean caching, EngineConfig config) {
        FakeBackend backend = new FakeBackend(VOCAB, BS, numBlocks, 4096, EOS);
        BlockManager blocks = new BlockManager(numBlocks, caching ? new PrefixHasher(7, BS) : null);
        LlmEngine engine = new LlmEngine(backend, blocks, TOK, List.of(EOS), config);
        engine.start();
        engines.add(engine);
        pools.add(blocks);
        return new Engine(engine, backend, blocks);
    }

    @AfterEach
    void nothingIsLeakedAndCachedBlocksCountAsFree() {
        engines.forEach(LlmEngine::close);
        for (BlockManager pool : pools) {
            assertThat(pool.usedCount()).as("referenced blocks after the test").isZero();
            assertThat(pool.freeCount()).isEqualTo(pool.totalBlocks());
        }
    }

    private static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0, 1, 0, 0, 1, null, maxTokens, List.of(), List.of(), true, true);
    }

    private static int[] prompt(int length, int salt) {
        int[] p = new int[length];
        for (int i = 0; i < length; i++) {
            p[i] = (i * 13 + salt * 7 + 1) % (VOCAB - 1);
        }
        return p;
    }

    /** Prompt tokens the backend computed for the sequence of {@code requestIndex}-th sequence id. */
    private static int computedTokens(FakeBackend backend, long sequenceId) {
        int n = 0;
        for (List<SequenceSlice> step : backend.history()) {
            for (SequenceSlice s : step) {
                if (s.sequenceId() == sequenceId) {
                    n += s.tokens().length;
                }
            }
        }
        return n;
    }

    @Test
    void aRepeatedPromptReusesItsFullBlocksComputesOnlyTheTailAndGivesTheSameTokens() throws Exception {
        Engine e = engine(64, true, EngineConfig.defaults());
        int[] p = prompt(18, 1); // 4 full blocks + 2 tokens
        FinishEvent first = e.engine().generate(new GenerationRequest("a", p, greedy(10)));
        assertThat(first.cachedTokens()).isZero();
        FinishEvent second = e.engine().generate(new GenerationRequest("b", p, greedy(10)));
        assertThat(second.tokenIds()).containsExactly(first.tokenIds())
                .containsExactly(FakeBackend.reference(p, 10, VOCAB, EOS, true));
        assertThat(second.cachedTokens()).isEqualTo(16);
        // sequence 1 computed the 2-token tail and its 9 decode steps (the 10th token needs no K/V)
        assertThat(computedTokens(e.backend(), 1)).isEqualTo(2 + 9);
        assertThat(computedTokens(e.backend(), 0)).isEqualTo(18 + 9);
        EngineStats stats = e.engine().stats();
        assertThat(stats.prefixQueriedTokens()).isEqualTo(36);
        assertThat(stats.prefixHitTokens()).isEqualTo(16);
        assertThat(stats.cachedBlocks()).isEqualTo(6); // (18 + 9) / 4 full blocks of computed K/V
    }

    @Test
    void aPromptOfWholeBlocksStillComputesItsLastToken() throws Exception {
        Engine e = engine(64, true, EngineConfig.defaults());
        int[] p = prompt(16, 2);
        e.engine().generate(new GenerationRequest("a", p, greedy(3)));
        FinishEvent again = e.engine().generate(new GenerationRequest("b", p, greedy(3)));
        assertThat(again.cachedTokens()).isEqualTo(12); // at most length - 1 tokens, in whole blocks
        assertThat(again.tokenIds()).containsExactly(FakeBackend.reference(p, 3, VOCAB, EOS, true));
        assertThat(computedTokens(e.backend(), 1)).isEqualTo(4 + 2);
    }

    @Test
    void theNextTurnOfAConversationReusesThePreviousTurnsPromptAndAnswer() throws Exception {
        Engine e = engine(64, true, EngineConfig.defaults());
        int[] turn1 = prompt(10, 3);
        FinishEvent a1 = e.engine().generate(new GenerationRequest("t1", turn1, greedy(12)));
        int[] turn2 = concat(turn1, a1.tokenIds(), prompt(5, 4));
        FinishEvent a2 = e.engine().generate(new GenerationRequest("t2", turn2, greedy(6)));
        // K/V of turn 1's prompt and of all its tokens but the last: 21 positions, 5 full blocks
        assertThat(a2.cachedTokens()).isEqualTo(20);
        assertThat(a2.tokenIds()).containsExactly(FakeBackend.reference(turn2, 6, VOCAB, EOS, true));
    }

    @Test
    void withoutTheCacheNothingIsReused() throws Exception {
        Engine e = engine(64, false, EngineConfig.defaults());
        int[] p = prompt(18, 1);
        e.engine().generate(new GenerationRequest("a", p, greedy(4)));
        FinishEvent again = e.engine().generate(new GenerationRequest("b", p, greedy(4)));
        assertThat(again.cachedTokens()).isZero();
        assertThat(computedTokens(e.backend(), 1)).isEqualTo(18 + 3);
        assertThat(e.engine().stats().prefixQueriedTokens()).isZero();
    }

    @Test
    void keptBlocksOfAPrefillLeaseJoinTheCacheWhenTheLeaseEnds() throws Exception {
        Engine e = engine(64, true, EngineConfig.defaults());
        int[] p = prompt(13, 5);
        RecordingListener l = new RecordingListener();
        e.engine().submitKeepingBlocks(new GenerationRequest("pf", p, greedy(1)), l);
        FinishEvent f = l.awaitFinish();
        assertThat(f.keptBlocks()).hasSize(4);
        // while leased, a second request shares the lease's full blocks
        FinishEvent shared = e.engine().generate(new GenerationRequest("b", p, greedy(2)));
        assertThat(shared.cachedTokens()).isEqualTo(12);
        e.blocks().free(f.keptBlocks()); // the decode engine's acknowledgement
        FinishEvent later = e.engine().generate(new GenerationRequest("c", p, greedy(2)));
        assertThat(later.cachedTokens()).isEqualTo(12);
        assertThat(later.tokenIds()).containsExactly(FakeBackend.reference(p, 2, VOCAB, EOS, true));
    }

    /**
     * Many concurrent requests sharing prefixes on a pool too small for them all: admissions take cached blocks,
     * evictions and preemptions happen, and every answer is still the unpaged reference.
     */
    @Test
    void underPressureWithPreemptionsEveryAnswerIsTheReference() throws Exception {
        Engine cached = engine(40, true, new EngineConfig(64, 16, 1024));
        Random rnd = new Random(11);
        int[] system = prompt(12, 9);
        List<int[]> prompts = new ArrayList<>();
        List<RecordingListener> listeners = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            int[] p = concat(Arrays.copyOf(system, 4 + rnd.nextInt(9)), prompt(1 + rnd.nextInt(10), i));
            prompts.add(p);
            RecordingListener l = new RecordingListener();
            listeners.add(l);
            cached.engine().submit(new GenerationRequest("r" + i, p, greedy(8 + rnd.nextInt(20))), l);
        }
        int hits = 0;
        for (int i = 0; i < prompts.size(); i++) {
            FinishEvent f = listeners.get(i).awaitFinish();
            assertThat(f.tokenIds()).as("request %d", i)
                    .containsExactly(FakeBackend.reference(prompts.get(i), f.tokenIds().length, VOCAB, EOS, true));
            hits += f.cachedTokens();
        }
        assertThat(hits).isPositive();
        assertThat(cached.engine().stats().preemptions()).as("the pool was under pressure").isPositive();
        assertThat(cached.blocks().evictions()).isPositive();
    }

    private static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] p : parts) {
            n += p.length;
        }
        int[] out = new int[n];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
