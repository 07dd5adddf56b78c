package io.distserve.engine.cuda;

/**
 * How one step's attention is cut into thread blocks: work items of up to {@code tokensPerItem} query tokens of one
 * slice, {@code headsPerBlock} query heads of one KV head per block, and {@code splits} key ranges of
 * {@code splitLen} positions (split-KV for small grids with long contexts).
 *
 * @param items         work items (grid.x)
 * @param itemTable     {slice, first token in the batch, tokens, first position} per item
 */
public record AttentionPlan(int items, int[] itemTable, int tokensPerItem, int headsPerBlock, int splits,
                            int splitLen) {

    /**
     * @param sliceStarts    batch index of each slice's first token
     * @param sliceLengths   tokens of each slice
     * @param slicePositions first position of each slice
     * @param smCount        multiprocessors to fill
     * @param maxSplits      cap on splits (0: no split-KV)
     */
    public static AttentionPlan of(int[] sliceStarts, int[] sliceLengths, int[] slicePositions, int heads,
                                   int kvHeads, int smCount, int maxSplits) {
        return of(sliceStarts, sliceLengths, slicePositions, heads, kvHeads, smCount, maxSplits, false);
    }

    /**
     * @param fixedSplits for a captured decode graph: the number of splits (the grid's z, baked into the graph)
     *                    depends only on the grid, not on the context length; the split length covers the
     *                    context with at most that many splits (the same split boundaries as the plan without
     *                    fixedSplits, so the same numbers), and the splits past the context are empty
     */
    public static AttentionPlan of(int[] sliceStarts, int[] sliceLengths, int[] slicePositions, int heads,
                                   int kvHeads, int smCount, int maxSplits, boolean fixedSplits) {
        int hg = CudaKernels.headsPerBlock(heads / kvHeads);
        int qt = Math.max(1, CudaKernels.ATTN_ROWS / hg);
        int items = 0;
        int maxEnd = 0;
        for (int s = 0; s < sliceLengths.length; s++) {
            items += (sliceLengths[s] + qt - 1) / qt;
            maxEnd = Math.max(maxEnd, slicePositions[s] + sliceLengths[s]);
        }
        int[] table = new int[items * 4];
        int i = 0;
        for (int s = 0; s < sliceLengths.length; s++) {
            for (int t = 0; t < sliceLengths[s]; t += qt) {
                table[4 * i] = s;
                table[4 * i + 1] = sliceStarts[s] + t;
                table[4 * i + 2] = Math.min(qt, sliceLengths[s] - t);
                table[4 * i + 3] = slicePositions[s] + t;
                i++;
            }
        }
        long blocks = (long) items * (heads / hg);
        int keyTiles = (maxEnd + CudaKernels.ATTN_KEYS - 1) / CudaKernels.ATTN_KEYS;
        // splits wanted to put ~2 blocks on every SM
        int wanted = maxSplits > 1 && blocks < 2L * smCount
                ? (int) Math.min(maxSplits, (2L * smCount + blocks - 1) / blocks) : 1;
        int splits = Math.max(1, Math.min(wanted, keyTiles));
        int tilesPerSplit = (keyTiles + splits - 1) / splits;
        int splitLen = Math.max(1, tilesPerSplit) * CudaKernels.ATTN_KEYS;
        splits = fixedSplits ? wanted : Math.max(1, (maxEnd + splitLen - 1) / splitLen);
        return new AttentionPlan(items, table, qt, hg, splits, splitLen);
    }

    /** The same items with {@code splits} forced (tests). */
    public AttentionPlan withSplits(int forcedSplits, int maxEnd) {
        int keyTiles = (maxEnd + CudaKernels.ATTN_KEYS - 1) / CudaKernels.ATTN_KEYS;
        int tilesPerSplit = Math.max(1, (keyTiles + forcedSplits - 1) / forcedSplits);
        int len = tilesPerSplit * CudaKernels.ATTN_KEYS;
        return new AttentionPlan(items, itemTable, tokensPerItem, headsPerBlock,
                Math.max(1, (maxEnd + len - 1) / len), len);
    }
}
