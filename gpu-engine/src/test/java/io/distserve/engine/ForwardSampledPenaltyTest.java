package io.distserve.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.sampling.RepetitionPenalties;
import io.distserve.engine.sampling.Sampler;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link ComputeBackend#forwardSampled}'s repetition penalty (the host default, which the CUDA kernel
 * repetition_penalty must match id for id): applied before sampling, once per distinct id, only to penalised rows.
 */
class ForwardSampledPenaltyTest {

    private static final int VOCAB = 97;

    private static List<SequenceSlice> step() {
        return List.of(new SequenceSlice(1, new int[] {3, 9, 27}, 0, new int[] {0}, SequenceSlice.LogitsMode.LAST),
                new SequenceSlice(2, new int[] {5, 6}, 0, new int[] {1}, SequenceSlice.LogitsMode.LAST));
    }

    private static float[][] rawLogits() {
        List<float[]> rows = new FakeBackend(VOCAB, 16, 4, 64, 0).forward(step());
        return new float[][] {rows.get(0), rows.get(1)};
    }

    private static int[] greedyWith(RepetitionPenalties p) {
        return new FakeBackend(VOCAB, 16, 4, 64, 0).forwardSampled(step(), new float[2], new int[2],
                new float[] {1f, 1f}, new float[2], new double[2], p);
    }

    @Test
    void aPenalisedFavouriteLosesAndTheOtherRowIsUntouched() {
        float[][] raw = rawLogits();
        int best0 = Sampler.greedyToken(raw[0].clone());
        int best1 = Sampler.greedyToken(raw[1].clone());
        int[] history = {best0, 4, best0, -1, VOCAB + 3};  // a repeat and two ids outside the vocabulary
        RepetitionPenalties p = new RepetitionPenalties(new float[] {10f, 1f}, new int[][] {history, null},
                new int[] {history.length, 0});
        float[] expected = raw[0].clone();
        Sampler.applyRepetitionPenalty(expected, history, history.length, 10f);
        int[] ids = greedyWith(p);
        assertThat(ids[0]).isNotEqualTo(best0).isEqualTo(Sampler.greedyToken(expected));
        assertThat(ids[1]).isEqualTo(best1);
    }

    @Test
    void eachDistinctIdIsPenalisedOnceHoweverOftenItRepeats() {
        float[][] raw = rawLogits();
        int best0 = Sampler.greedyToken(raw[0].clone());
        // 5 / 2 = 2.5 still beats every other logit of the fake (< 1); applied three times (0.625) it would not
        int[] history = {best0, best0, best0};
        int[] ids = greedyWith(new RepetitionPenalties(new float[] {2f, 1f}, new int[][] {history, null},
                new int[] {3, 0}));
        assertThat(ids[0]).isEqualTo(best0);
    }

    @Test
    void onlyTheValidPrefixOfAHistoryBufferCounts() {
        float[][] raw = rawLogits();
        int best0 = Sampler.greedyToken(raw[0].clone());
        int[] buffer = {4, best0};  // best0 lies past the length: not seen
        int[] ids = greedyWith(new RepetitionPenalties(new float[] {10f, 1f}, new int[][] {buffer, null},
                new int[] {1, 0}));
        assertThat(ids[0]).isEqualTo(best0);
    }

    @Test
    void badPenaltiesAreRefused() {
        assertThatThrownBy(() -> new RepetitionPenalties(new float[] {0f}, new int[][] {new int[0]}, new int[] {0}))
                .hasMessageContaining("> 0");
        assertThatThrownBy(() -> new RepetitionPenalties(new float[] {1.2f}, new int[][] {new int[2]}, new int[] {3}))
                .hasMessageContaining("history length 3");
        assertThatThrownBy(() -> new RepetitionPenalties(new float[] {1f, 1f}, new int[][] {null}, new int[2]))
                .hasMessageContaining("rows");
    }
}
