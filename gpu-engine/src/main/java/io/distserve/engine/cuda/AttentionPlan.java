package io.distserve.engine.cuda;

/**
 * How one step's attention is cut into thread blocks. Two kernels share the step's output (disjoint rows):
 * <ul>
 * <li>paged_attention (attention.cu, CUDA cores): work items of up to {@code tokensPerItem} query tokens of one
 *     slice, {@code headsPerBlock} query heads of one KV head per block, and {@code splits} key ranges of
 *     {@code splitLen} positions (split-KV for small grids with long contexts). Decodes and short slices.</li>
 * <li>attention_prefill (attention_prefill.cu, tensor cores): slices of at least
 *     {@link CudaKernels#PREFILL_MIN_TOKENS} tokens when the head dim has a variant (64, 128); items of up to
 *     64 / {@code prefillHeadsPerBlock} tokens, {@code prefillHeadsPerBlock} (4, 2 or 1) heads of one KV head per
 *     block, no split; ordered by decreasing last position (the longest key ranges start first).</li>
 * </ul>
 * A step with prefill items never splits its paged_attention items: the prefill items fill the GPU (split-KV is
 * for grids too small to), and the merge of the splits runs in the last split's block (attention.cu).
 *
 * @param items         paged_attention work items (grid.x)
 * @param itemTable     {slice, first token in the batch, tokens, first position} per item: the {@code items}
 *                      paged_attention items, then the {@code prefillItems} attention_prefill items
 * @param prefillItems  attention_prefill work items (0: the kernel does not run)
 */
public record AttentionPlan(int items, int[] itemTable, int tokensPerItem, int headsPerBlock, int splits,
                            int splitLen, int prefillItems, int prefillHeadsPerBlock) {

    /**
     * Everything on paged_attention (the decode graphs, and the checks of that kernel).
     *
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
        return build(sliceStarts, sliceLengths, slicePositions, heads, kvHeads, smCount, maxSplits, fixedSplits,
                new boolean[sliceLengths.length]);
    }

    /**
     * The eager step's plan: slices of at least {@link CudaKernels#PREFILL_MIN_TOKENS} tokens on attention_prefill
     * when {@code headDim} has a variant ({@link CudaKernels#prefillSupports}), the others on paged_attention.
     */
    public static AttentionPlan forStep(int[] sliceStarts, int[] sliceLengths, int[] slicePositions, int heads,
                                        int kvHeads, int headDim, int smCount, int maxSplits) {
        return forStep(sliceStarts, sliceLengths, slicePositions, heads, kvHeads, headDim, smCount, maxSplits,
                smCount);
    }

    /**
     * As {@link #forStep(int[], int[], int[], int, int, int, int, int)}; the short slices (decodes) go to
     * attention_prefill too when they alone give at least {@code tensorDecodeMinBlocks} of its blocks
     * ({@link #tensorCoreDecode}).
     */
    public static AttentionPlan forStep(int[] sliceStarts, int[] sliceLengths, int[] slicePositions, int heads,
                                        int kvHeads, int headDim, int smCount, int maxSplits,
                                        int tensorDecodeMinBlocks) {
        boolean[] prefill = new boolean[sliceLengths.length];
        if (CudaKernels.prefillSupports(headDim)) {
            int shortSlices = 0;
            for (int s = 0; s < prefill.length; s++) {
                prefill[s] = sliceLengths[s] >= CudaKernels.PREFILL_MIN_TOKENS;
                shortSlices += prefill[s] ? 0 : 1;
            }
            if (tensorCoreDecode(shortSlices, heads, kvHeads, headDim, tensorDecodeMinBlocks)) {
                java.util.Arrays.fill(prefill, true);
            }
        }
        return build(sliceStarts, sliceLengths, slicePositions, heads, kvHeads, smCount, maxSplits, false, prefill);
    }

    /**
     * A captured decode graph's plan: every slice on attention_prefill when {@link #tensorCoreDecode} says so for
     * this batch size (the same rule as the eager {@link #forStep}, so a replay computes what the eager step
     * computes), else everything on paged_attention with splits fixed by the grid ({@link #of} with fixedSplits).
     */
    public static AttentionPlan forDecodeGraph(int[] sliceStarts, int[] sliceLengths, int[] slicePositions, int heads,
                                               int kvHeads, int headDim, int smCount, int maxSplits,
                                               int tensorDecodeMinBlocks) {
        if (tensorCoreDecode(sliceLengths.length, heads, kvHeads, headDim, tensorDecodeMinBlocks)) {
            boolean[] all = new boolean[sliceLengths.length];
            java.util.Arrays.fill(all, true);
            return build(sliceStarts, sliceLengths, slicePositions, heads, kvHeads, smCount, maxSplits, false, all);
        }
        return of(sliceStarts, sliceLengths, slicePositions, heads, kvHeads, smCount, maxSplits, true);
    }

    /**
     * Decodes on the tensor-core kernel: when the decode slices alone give attention_prefill at least
     * {@code minBlocks} blocks (one per slice and group of prefillHeadsPerBlock query heads), i.e. enough to fill
     * the GPU without split-KV. Its K/V tiles stream by cp.async, double-buffered; paged_attention's 4-row blocks
     * wait on each tile in turn (measured on an H100, qwen3-8b batch 32: 28.5 us per layer + 6.8 us of combine for
     * 17 MB of KV). Below that (batch 1..16 of qwen3-8b) split-KV on paged_attention fills the GPU better.
     */
    static boolean tensorCoreDecode(int decodeSlices, int heads, int kvHeads, int headDim, int minBlocks) {
        if (!CudaKernels.prefillSupports(headDim) || decodeSlices == 0) {
            return false;
        }
        int hg = CudaKernels.prefillHeadsPerBlock(heads / kvHeads);
        return (long) decodeSlices * (heads / hg) >= minBlocks;
    }

    private static AttentionPlan build(int[] sliceStarts, int[] sliceLengths, int[] slicePositions, int heads,
                                       int kvHeads, int smCount, int maxSplits, boolean fixedSplits,
                                       boolean[] prefill) {
        int hg = CudaKernels.headsPerBlock(heads / kvHeads);
        int qt = Math.max(1, CudaKernels.ATTN_ROWS / hg);
        int phg = CudaKernels.prefillHeadsPerBlock(heads / kvHeads);
        int pqt = CudaKernels.PREFILL_ROWS / phg;
        int items = 0;
        int prefillItems = 0;
        int maxEnd = 0;
        for (int s = 0; s < sliceLengths.length; s++) {
            if (prefill[s]) {
                prefillItems += (sliceLengths[s] + pqt - 1) / pqt;
            } else {
                items += (sliceLengths[s] + qt - 1) / qt;
                maxEnd = Math.max(maxEnd, slicePositions[s] + sliceLengths[s]);
            }
        }
        int[] table = new int[(items + prefillItems) * 4];
        int i = 0;
        for (int s = 0; s < sliceLengths.length; s++) {
            if (!prefill[s]) {
                for (int t = 0; t < sliceLengths[s]; t += qt) {
                    i = item(table, i, s, sliceStarts[s] + t, Math.min(qt, sliceLengths[s] - t), slicePositions[s] + t);
                }
            }
        }
        if (prefillItems > 0) {
            // the items with the most key tiles first: the grid's first blocks are dispatched first
            long[] keyed = new long[prefillItems];
            int[][] pending = new int[prefillItems][];
            int j = 0;
            for (int s = 0; s < sliceLengths.length; s++) {
                if (prefill[s]) {
                    for (int t = 0; t < sliceLengths[s]; t += pqt) {
                        int tokens = Math.min(pqt, sliceLengths[s] - t);
                        pending[j] = new int[] {s, sliceStarts[s] + t, tokens, slicePositions[s] + t};
                        keyed[j] = ((long) (Integer.MAX_VALUE - (slicePositions[s] + t + tokens)) << 32) | j;
                        j++;
                    }
                }
            }
            java.util.Arrays.sort(keyed);
            for (long key : keyed) {
                int[] p = pending[(int) key];
                i = item(table, i, p[0], p[1], p[2], p[3]);
            }
        }
        long blocks = (long) items * (heads / hg);
        int keyTiles = (maxEnd + CudaKernels.ATTN_KEYS - 1) / CudaKernels.ATTN_KEYS;
        // splits wanted to put ~DECODE_BLOCKS_PER_SM blocks on every SM; none next to prefill items (see the class
        // comment). A decode block's time is a chain of dependent key-tile loads (block table, then K/V), so more,
        // shorter splits finish sooner as long as the SM holds them all: measured on qwen3-8b at batch 29 (H200),
        // 2 splits of 3 tiles took 28 us per layer for 17 MB of KV.
        long target = (long) DECODE_BLOCKS_PER_SM * smCount;
        int wanted = maxSplits > 1 && prefillItems == 0 && items > 0 && blocks < target
                ? (int) Math.min(maxSplits, (target + blocks - 1) / blocks) : 1;
        int splits = Math.max(1, Math.min(wanted, keyTiles));
        int tilesPerSplit = (keyTiles + splits - 1) / splits;
        int splitLen = Math.max(1, tilesPerSplit) * CudaKernels.ATTN_KEYS;
        splits = fixedSplits ? wanted : Math.max(1, (maxEnd + splitLen - 1) / splitLen);
        return new AttentionPlan(items, table, qt, hg, splits, splitLen, prefillItems, phg);
    }

    /** Decode attention blocks wanted per SM (each is 4 warps and ~21 KB of shared memory at head_dim 128). */
    static final int DECODE_BLOCKS_PER_SM = 8;

    private static int item(int[] table, int i, int slice, int token, int tokens, int position) {
        table[4 * i] = slice;
        table[4 * i + 1] = token;
        table[4 * i + 2] = tokens;
        table[4 * i + 3] = position;
        return i + 1;
    }

    /** Items of both kernels (the ints of the item table / 4). */
    public int allItems() {
        return items + prefillItems;
    }

    /** The same items with {@code splits} forced (tests; paged_attention-only plans). */
    public AttentionPlan withSplits(int forcedSplits, int maxEnd) {
        if (prefillItems > 0) {
            throw new IllegalStateException("a plan with attention_prefill items cannot split");
        }
        int keyTiles = (maxEnd + CudaKernels.ATTN_KEYS - 1) / CudaKernels.ATTN_KEYS;
        int tilesPerSplit = Math.max(1, (keyTiles + forcedSplits - 1) / forcedSplits);
        int len = tilesPerSplit * CudaKernels.ATTN_KEYS;
        return new AttentionPlan(items, itemTable, tokensPerItem, headsPerBlock,
                Math.max(1, (maxEnd + len - 1) / len), len, 0, prefillHeadsPerBlock);
    }
}
