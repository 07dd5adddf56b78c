package io.distserve.engine.cpu;

import io.distserve.engine.BatchChecks;

import io.distserve.engine.SequenceSlice;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import java.util.List;

/**
 * One forward step's slices, validated and flattened: the batch's tokens {@code 0 .. n-1} in slice order, with
 * their ids, absolute positions and slices; and the rows whose logits are asked for.
 */
final class StepBatch {

    final List<SequenceSlice> slices;
    /** Number of tokens over all slices. */
    final int n;
    final int[] tokenIds;
    final int[] positions;
    /** Index in the batch of each slice's first token. */
    final int[] sliceStart;
    /** Batch indices of the tokens whose logits are returned, in output order. */
    final int[] logitRows;
    /** Largest {@code endPosition} over the slices. */
    final int maxEnd;

    private StepBatch(List<SequenceSlice> slices, int n, int logitCount) {
        this.slices = slices;
        this.n = n;
        this.tokenIds = new int[n];
        this.positions = new int[n];
        this.sliceStart = new int[slices.size()];
        this.logitRows = new int[logitCount];
        int t = 0;
        int l = 0;
        int end = 0;
        for (int s = 0; s < slices.size(); s++) {
            SequenceSlice slice = slices.get(s);
            sliceStart[s] = t;
            for (int i = 0; i < slice.length(); i++) {
                tokenIds[t + i] = slice.tokens()[i];
                positions[t + i] = slice.startPosition() + i;
            }
            switch (slice.logits()) {
                case NONE -> { }
                case LAST -> logitRows[l++] = t + slice.length() - 1;
                case ALL -> {
                    for (int i = 0; i < slice.length(); i++) {
                        logitRows[l++] = t + i;
                    }
                }
            }
            t += slice.length();
            end = Math.max(end, slice.endPosition());
        }
        this.maxEnd = end;
    }

    /**
     * Checks every slice against the model and the pool before anything is computed or written.
     *
     * @throws IllegalArgumentException naming the slice and what is wrong with it
     */
    static StepBatch of(List<SequenceSlice> batch, ModelConfig config, KvCacheLayout layout) {
        BatchChecks.Totals totals = BatchChecks.check(batch, config, layout);
        return new StepBatch(List.copyOf(batch), totals.tokens(), totals.logitRows());
    }
}
