package io.distserve.engine;

import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import java.util.List;

/**
 * What every backend checks about a batch before it computes anything or writes a KV slot: one place, so that the
 * CPU and CUDA backends refuse the same batches with the same messages.
 */
public final class BatchChecks {

    /** The batch's size: tokens computed and logit rows returned. */
    public record Totals(int tokens, int logitRows) {
    }

    private BatchChecks() {
    }

    /** @throws IllegalArgumentException naming the slice and what is wrong with it */
    public static Totals check(List<SequenceSlice> batch, ModelConfig config, KvCacheLayout layout) {
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
            check(slice, config, layout);
            n += slice.length();
            logits += slice.logitRows();
        }
        int widest = Math.max(Math.max(config.hiddenSize(), config.intermediateSize()), config.qDim());
        if (n > Integer.MAX_VALUE / widest || logits * config.vocabSize() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("batch too large: " + n + " tokens, " + logits + " logit rows");
        }
        return new Totals((int) n, (int) logits);
    }

    private static void check(SequenceSlice slice, ModelConfig config, KvCacheLayout layout) {
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
