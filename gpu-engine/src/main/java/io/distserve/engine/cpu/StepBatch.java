package io.distserve.engine.cpu;

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
        if (batch == null) {
            throw new IllegalArgumentException("batch is null");
        }
        long n = 0;
        long logits = 0;
        for (int s = 0; s < batch.size(); s++) {
            SequenceSlice slice = batch.get(s);
            if (slice == null) {
                throw new IllegalArgumentException("slice " + s + " of the batch is null");
            }
            validate(slice, config, layout);
            n += slice.length();
            logits += slice.logitRows();
        }
        int widest = Math.max(Math.max(config.hiddenSize(), config.intermediateSize()), config.qDim());
        if (n > Integer.MAX_VALUE / widest
                || logits * config.vocabSize() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("batch too large: " + n + " tokens, " + logits + " logit rows");
        }
        return new StepBatch(List.copyOf(batch), (int) n, (int) logits);
    }

    private static void validate(SequenceSlice slice, ModelConfig config, KvCacheLayout layout) {
        String who = "sequence " + slice.sequenceId() + ": ";
        if (slice.tokens() == null || slice.blockTable() == null || slice.logits() == null) {
            throw new IllegalArgumentException(who + "tokens, block table and logits mode must not be null");
        }
        if (slice.length() == 0) {
            throw new IllegalArgumentException(who + "slice has no tokens");
        }
        if (slice.startPosition() < 0) {
            throw new IllegalArgumentException(who + "negative start position " + slice.startPosition());
        }
        long end = (long) slice.startPosition() + slice.length();
        if (end > config.maxPositions()) {
            throw new IllegalArgumentException(who + "position " + (end - 1) + " is beyond the model's context ("
                    + "max_position_embeddings " + config.maxPositions() + ")");
        }
        int needed = layout.blocksFor((int) end);
        if (slice.blockTable().length < needed) {
            throw new IllegalArgumentException(who + "block table has " + slice.blockTable().length
                    + " blocks, positions up to " + (end - 1) + " need " + needed + " (block size "
                    + layout.blockSize() + ")");
        }
        for (int j = 0; j < needed; j++) {
            int b = slice.blockTable()[j];
            if (b < 0 || b >= layout.numBlocks()) {
                throw new IllegalArgumentException(who + "block table entry " + j + " = " + b + " is outside [0, "
                        + layout.numBlocks() + ")");
            }
        }
        for (int i = 0; i < slice.length(); i++) {
            int id = slice.tokens()[i];
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException(who + "token id " + id + " at position "
                        + (slice.startPosition() + i) + " is outside the vocabulary [0, " + config.vocabSize() + ")");
            }
        }
    }
}
