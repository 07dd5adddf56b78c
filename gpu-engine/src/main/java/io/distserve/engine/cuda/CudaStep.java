package io.distserve.engine.cuda;

import io.distserve.engine.BatchChecks;

import io.distserve.engine.SequenceSlice;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import java.util.List;

/**
 * One forward step's slices, validated and flattened for upload, with the same checks and messages as the CPU
 * backend's {@code StepBatch} (kept identical on purpose: CudaBackendTest compares the two): nothing reaches the
 * device unless every slice is valid.
 */
final class CudaStep {

    final List<SequenceSlice> slices;
    final int n;
    final int[] tokenIds;
    final int[] positions;
    /** Per token: physical block * blockSize + slot, where its K/V go. */
    final int[] slots;
    final int[] sliceStart;
    final int[] sliceLength;
    final int[] slicePosition;
    final int[] logitRows;
    final int maxEnd;
    /** Block tables, one row of {@code tableStride} per slice (unused entries 0). */
    final int[] blockTables;
    final int tableStride;

    private CudaStep(List<SequenceSlice> slices, int n, int logitCount, int blockSize) {
        this.slices = slices;
        this.n = n;
        tokenIds = new int[n];
        positions = new int[n];
        slots = new int[n];
        int s = slices.size();
        sliceStart = new int[s];
        sliceLength = new int[s];
        slicePosition = new int[s];
        logitRows = new int[logitCount];
        int stride = 1;
        int end = 0;
        for (SequenceSlice slice : slices) {
            stride = Math.max(stride, (slice.endPosition() + blockSize - 1) / blockSize);
            end = Math.max(end, slice.endPosition());
        }
        tableStride = stride;
        maxEnd = end;
        blockTables = new int[s * stride];
        int t = 0;
        int l = 0;
        for (int i = 0; i < s; i++) {
            SequenceSlice slice = slices.get(i);
            sliceStart[i] = t;
            sliceLength[i] = slice.length();
            slicePosition[i] = slice.startPosition();
            int needed = (slice.endPosition() + blockSize - 1) / blockSize;
            System.arraycopy(slice.blockTable(), 0, blockTables, i * stride, needed);
            for (int j = 0; j < slice.length(); j++) {
                int pos = slice.startPosition() + j;
                tokenIds[t + j] = slice.tokens()[j];
                positions[t + j] = pos;
                slots[t + j] = slice.blockTable()[pos / blockSize] * blockSize + pos % blockSize;
            }
            switch (slice.logits()) {
                case NONE -> { }
                case LAST -> logitRows[l++] = t + slice.length() - 1;
                case ALL -> {
                    for (int j = 0; j < slice.length(); j++) {
                        logitRows[l++] = t + j;
                    }
                }
            }
            t += slice.length();
        }
    }

    /**
     * A decode step: every slice is one token and asks for its logits (so rows = tokens = slices). Such steps
     * differ only in data, never in shape, for a given batch size: what a captured graph can replay.
     */
    boolean isDecode() {
        return n == slices.size() && logitRows.length == n;
    }

    static CudaStep of(List<SequenceSlice> batch, ModelConfig config, KvCacheLayout layout) {
        BatchChecks.Totals totals = BatchChecks.check(batch, config, layout);
        if ((long) layout.numBlocks() * layout.blockSize() > Integer.MAX_VALUE) {
            throw new IllegalStateException("KV pool too large for 32-bit slot indices");
        }
        return new CudaStep(List.copyOf(batch), totals.tokens(), totals.logitRows(), layout.blockSize());
    }
}
