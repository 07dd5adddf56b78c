package io.distserve.engine.sched;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.FakeTokenizers;
import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.tokenizer.TextTokenizer;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SchedulerTest {

    private static final TextTokenizer TOK = FakeTokenizers.chars(100, 99);
    private long nextId;

    private Sequence seq(int promptLength, int maxTokens) {
        return seq(promptLength, maxTokens, false);
    }

    private Sequence seq(int promptLength, int maxTokens, boolean keep) {
        int[] prompt = new int[promptLength];
        for (int i = 0; i < promptLength; i++) {
            prompt[i] = 1 + i % 50;
        }
        long id = nextId++;
        return Sequence.create(id, "r" + id, prompt, SamplingParams.greedy(maxTokens), id, 0, keep, TOK, Set.of(99));
    }

    /** Plays the engine's part: marks chunks computed and appends a token where one is sampled. */
    private static void complete(SchedulerOutput out) {
        for (ScheduledChunk c : out.chunks()) {
            c.sequence().advanceComputed(c.length());
            if (c.samples()) {
                c.sequence().appendToken(7, 0);
            }
        }
    }

    private static int chunkLength(SchedulerOutput out, Sequence s) {
        return out.chunks().stream().filter(c -> c.sequence() == s).mapToInt(ScheduledChunk::length).sum();
    }

    @Test
    void decodesGoFirstAndLongPromptsArePrefilledInChunksUnderTheBudget() {
        BlockManager blocks = new BlockManager(100);
        Scheduler s = new Scheduler(blocks, 4, 8, 16);
        Sequence a = seq(3, 10);
        s.add(a);
        SchedulerOutput first = s.schedule();
        assertThat(first.chunks()).containsExactly(new ScheduledChunk(a, 0, 3, true));
        complete(first);

        Sequence b = seq(20, 10);
        s.add(b);
        SchedulerOutput second = s.schedule();
        assertThat(second.chunks().get(0)).isEqualTo(new ScheduledChunk(a, 3, 1, true));
        assertThat(second.chunks().get(1)).isEqualTo(new ScheduledChunk(b, 0, 7, false));
        // Admission reserved the blocks of b's whole prompt at once.
        assertThat(b.blockTable().size()).isEqualTo(5);
        complete(second);

        SchedulerOutput third = s.schedule();
        assertThat(third.chunks()).containsExactly(new ScheduledChunk(a, 4, 1, true), new ScheduledChunk(b, 7, 7,
                false));
        complete(third);
        SchedulerOutput fourth = s.schedule();
        assertThat(fourth.chunks()).containsExactly(new ScheduledChunk(a, 5, 1, true), new ScheduledChunk(b, 14, 6,
                true));
        assertThat(fourth.scheduledTokens()).isEqualTo(7);
        complete(fourth);
        assertThat(b.generatedCount()).isEqualTo(1);
        assertThat(s.schedule().chunks()).extracting(ScheduledChunk::length).containsExactly(1, 1);
    }

    @Test
    void maxRunningAndFreeBlocksLimitAdmissionInArrivalOrder() {
        BlockManager blocks = new BlockManager(6);
        Scheduler s = new Scheduler(blocks, 4, 1000, 2);
        Sequence a = seq(4, 4);
        Sequence b = seq(4, 4);
        Sequence c = seq(4, 4);
        s.add(a);
        s.add(b);
        s.add(c);
        SchedulerOutput out = s.schedule();
        assertThat(out.chunks()).extracting(ScheduledChunk::sequence).containsExactly(a, b);
        assertThat(s.waitingCount()).isEqualTo(1);

        // The head of the queue needs more blocks than are free: a later, smaller one does not overtake it.
        Scheduler hol = new Scheduler(new BlockManager(3), 4, 1000, 10);
        Sequence big = seq(12, 1);
        Sequence small = seq(2, 1);
        Sequence blocker = seq(4, 8);
        hol.add(blocker);
        complete(hol.schedule());
        hol.add(big);
        hol.add(small);
        SchedulerOutput next = hol.schedule();
        assertThat(next.chunks()).extracting(ScheduledChunk::sequence).containsExactly(blocker);
        assertThat(hol.waitingCount()).isEqualTo(2);
    }

    @Test
    void outOfBlocksTheYoungestRunningSequenceIsPreemptedAndRequeuedFirst() {
        BlockManager blocks = new BlockManager(4);
        Scheduler s = new Scheduler(blocks, 2, 100, 10);
        Sequence older = seq(2, 10);
        Sequence younger = seq(2, 10);
        Sequence later = seq(1, 10);
        s.add(older);
        s.add(younger);
        complete(s.schedule()); // both prefilled, one block each, one token each
        complete(s.schedule()); // position 2 needs a second block each: 0 free now
        assertThat(blocks.freeCount()).isZero();
        s.add(later);
        SchedulerOutput out = s.schedule(); // positions 3: fit in the second blocks
        assertThat(out.preempted()).isEmpty();
        complete(out);

        SchedulerOutput squeeze = s.schedule(); // position 4: older needs a block, the youngest goes
        assertThat(squeeze.preempted()).containsExactly(younger);
        assertThat(squeeze.chunks()).containsExactly(new ScheduledChunk(older, 4, 1, true));
        assertThat(younger.status()).isEqualTo(SequenceStatus.WAITING);
        assertThat(younger.numComputed()).isZero();
        assertThat(younger.blockTable().isEmpty()).isTrue();
        assertThat(younger.generatedCount()).isEqualTo(3); // kept for recompute
        assertThat(younger.preemptions()).isEqualTo(1);
        assertThat(s.preemptions()).isEqualTo(1);
        complete(squeeze);

        // When room returns, the preempted sequence is admitted before the later arrival and recomputes all 5.
        s.finish(older, FinishReason.STOP, 1);
        SchedulerOutput recompute = s.schedule();
        assertThat(recompute.chunks().get(0)).isEqualTo(new ScheduledChunk(younger, 0, 5, true));
        assertThat(recompute.chunks()).extracting(ScheduledChunk::sequence).containsExactly(younger, later);
    }

    @Test
    void aSequenceThatIsItselfTheYoungestPreemptsItself() {
        BlockManager blocks = new BlockManager(2);
        Scheduler s = new Scheduler(blocks, 2, 100, 10);
        Sequence only = seq(2, 10);
        s.add(only);
        complete(s.schedule());
        int[] lease = blocks.allocate(1).orElseThrow(); // someone else holds the last block
        SchedulerOutput out = s.schedule();
        assertThat(out.preempted()).containsExactly(only);
        assertThat(out.chunks()).isEmpty();
        assertThat(blocks.freeCount()).isEqualTo(1);
        blocks.free(lease);
        assertThat(s.schedule().chunks()).containsExactly(new ScheduledChunk(only, 0, 3, true));
    }

    @Test
    void finishFreesBlocksInAnyStateOrHandsThemOverWhenKept() {
        BlockManager blocks = new BlockManager(10);
        Scheduler s = new Scheduler(blocks, 4, 100, 10);
        Sequence running = seq(5, 4);
        Sequence kept = seq(6, 1, true);
        Sequence abortedKept = seq(6, 4, true);
        s.add(running);
        s.add(kept);
        s.add(abortedKept);
        complete(s.schedule());
        Sequence waiting = seq(3, 2);
        s.add(waiting);
        assertThat(s.finish(waiting, FinishReason.ABORT, 1)).isEmpty();
        assertThat(s.finish(running, FinishReason.ABORT, 1)).isEmpty();
        int[] handed = s.finish(kept, FinishReason.LENGTH, 1);
        assertThat(handed).hasSize(2);
        assertThat(s.finish(abortedKept, FinishReason.ABORT, 1)).isEmpty();
        assertThat(blocks.usedCount()).isEqualTo(2);
        blocks.free(handed);
        assertThat(blocks.freeCount()).isEqualTo(10);
        assertThat(s.hasWork()).isFalse();
        assertThat(kept.status()).isEqualTo(SequenceStatus.FINISHED);
        assertThatThrownBy(() -> s.finish(kept, FinishReason.STOP, 2)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void aPrefilledSequenceStartsDecodingAtItsFirstToken() {
        BlockManager blocks = new BlockManager(10);
        Scheduler s = new Scheduler(blocks, 4, 100, 10);
        int[] prompt = {1, 2, 3, 4, 5, 6, 7, 8};
        int[] migrated = blocks.allocate(2).orElseThrow();
        Sequence p = Sequence.prefilled(50, "m", prompt, SamplingParams.greedy(5), 0, 0, TOK, Set.of(99), migrated,
                4);
        p.appendToken(9, 0);
        s.add(p);
        SchedulerOutput out = s.schedule();
        assertThat(out.chunks()).containsExactly(new ScheduledChunk(p, 8, 1, true));
        assertThat(p.blockTable().toArray()).startsWith(migrated).hasSize(3);
        assertThatThrownBy(() -> Sequence.prefilled(51, "x", prompt, SamplingParams.greedy(5), 0, 0, TOK, Set.of(),
                new int[] {1}, 4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs 2");
        assertThat(List.of(p.generatedTokens()[0])).containsExactly(9);
    }
}
