package io.distserve.engine.sched;

import java.util.List;

/**
 * What one step runs.
 *
 * @param chunks    the slices to compute, decodes first
 * @param preempted sequences sent back to waiting in this step (their blocks are already freed)
 */
public record SchedulerOutput(List<ScheduledChunk> chunks, List<Sequence> preempted) {

    public SchedulerOutput {
        chunks = List.copyOf(chunks);
        preempted = List.copyOf(preempted);
    }

    public boolean isEmpty() {
        return chunks.isEmpty();
    }

    public int scheduledTokens() {
        int n = 0;
        for (ScheduledChunk c : chunks) {
            n += c.length();
        }
        return n;
    }
}
