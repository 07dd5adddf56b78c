package io.distserve.engine.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.distserve.engine.SequenceSlice;
import io.distserve.engine.SequenceSlice.LogitsMode;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.CheckpointException;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.safetensors.DType;
import io.distserve.engine.testing.InMemoryTensorStore;
import io.distserve.engine.testing.TinyModels;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class CpuBackendTest {

    private static final ModelConfig QWEN3 = TinyModels.qwen3();
    private static final ModelConfig LLAMA = TinyModels.llama();

    // ---- helpers -------------------------------------------------------------------------------------------

    private static int[] shuffledBlocks(long seed, int numBlocks, int count) {
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < numBlocks; i++) {
            ids.add(i);
        }
        Collections.shuffle(ids, new Random(seed));
        return ids.subList(0, count).stream().mapToInt(Integer::intValue).toArray();
    }

    private static SequenceSlice slice(long id, int[] tokens, int from, int to, int[] table, LogitsMode mode) {
        return new SequenceSlice(id, Arrays.copyOfRange(tokens, from, to), from, table, mode);
    }

    /** Prefills {@code tokens} in chunks of the given sizes with ALL logits; returns every position's logits. */
    private static List<float[]> prefillInChunks(CpuBackend b, int[] tokens, int[] table, int... chunks) {
        List<float[]> out = new ArrayList<>();
        int at = 0;
        for (int size : chunks) {
            out.addAll(b.forward(List.of(slice(1, tokens, at, at + size, table, LogitsMode.ALL))));
            at += size;
        }
        assertEquals(tokens.length, at);
        return out;
    }

    /** max |a - ref| / max |ref| over all rows. */
    private static double relativeError(List<float[]> actual, double[][] ref) {
        assertEquals(ref.length, actual.size());
        double maxDiff = 0;
        double maxRef = 0;
        for (int p = 0; p < ref.length; p++) {
            assertEquals(ref[p].length, actual.get(p).length);
            for (int v = 0; v < ref[p].length; v++) {
                maxDiff = Math.max(maxDiff, Math.abs(actual.get(p)[v] - ref[p][v]));
                maxRef = Math.max(maxRef, Math.abs(ref[p][v]));
            }
        }
        return maxDiff / maxRef;
    }

    private static void assertMatchesReference(List<float[]> actual, double[][] ref) {
        double err = relativeError(actual, ref);
        assertTrue(err < 1e-4, "relative max error " + err);
    }

    private static void assertBitwise(List<float[]> expected, List<float[]> actual) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), 0f, "row " + i);
        }
    }

    private static double spread(double[][] logits) {
        double sum = 0;
        double sq = 0;
        int n = 0;
        for (double[] row : logits) {
            for (double v : row) {
                sum += v;
                sq += v * v;
                n++;
            }
        }
        double mean = sum / n;
        return Math.sqrt(sq / n - mean * mean);
    }

    private static byte[] snapshot(CpuBackend b) {
        List<ByteBuffer> chunks = b.kvCache().chunks();
        int total = 0;
        for (ByteBuffer c : chunks) {
            total += c.capacity();
        }
        byte[] all = new byte[total];
        int at = 0;
        for (ByteBuffer c : chunks) {
            c.get(0, all, at, c.capacity());
            at += c.capacity();
        }
        return all;
    }

    // ---- agreement with the naive reference ----------------------------------------------------------------

    @Test
    void qwen3LogitsMatchNaiveReferenceAtEveryPosition() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 1, true);
        int[] tokens = TinyModels.randomTokens(2, 30, QWEN3.vocabSize());
        double[][] ref = new NaiveReference(QWEN3, store).logitsAll(tokens);
        assertTrue(spread(ref) > 1.0, "random weights give a real logit spread: " + spread(ref));
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 8, 8, 2)) {
            List<float[]> got = b.forward(List.of(slice(1, tokens, 0, 30, new int[] {0, 1, 2, 3}, LogitsMode.ALL)));
            assertMatchesReference(got, ref);
        }
    }

    @Test
    void llamaLogitsMatchNaiveReference() {
        InMemoryTensorStore store = TinyModels.randomWeights(LLAMA, 3, false);
        assertTrue(!store.contains("model.layers.0.self_attn.q_norm.weight"));
        int[] tokens = TinyModels.randomTokens(4, 21, LLAMA.vocabSize());
        double[][] ref = new NaiveReference(LLAMA, store).logitsAll(tokens);
        assertTrue(spread(ref) > 1.0, "logit spread " + spread(ref));
        try (CpuBackend b = CpuBackend.create(LLAMA, store, 4, 12, 2)) {
            int[] table = shuffledBlocks(5, 12, 6);
            List<float[]> whole = prefillInChunks(b, tokens, table, 21);
            assertMatchesReference(whole, ref);
            assertBitwise(whole, prefillInChunks(b, tokens, table, 5, 1, 8, 7));
        }
    }

    // ---- paged storage ---------------------------------------------------------------------------------------

    @Test
    void shuffledBlockTableWholeChunkedAndTokenByTokenAllAgree() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 6, true);
        int[] tokens = TinyModels.randomTokens(7, 30, QWEN3.vocabSize());
        double[][] ref = new NaiveReference(QWEN3, store).logitsAll(tokens);
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 20, 2)) {
            int[] table = shuffledBlocks(8, 20, 8);
            List<float[]> whole = prefillInChunks(b, tokens, table, 30);
            assertMatchesReference(whole, ref);

            int[] other = shuffledBlocks(9, 20, 8);
            assertBitwise(whole, prefillInChunks(b, tokens, other, 3, 9, 4, 13, 1));

            int[] ones = new int[30];
            Arrays.fill(ones, 1);
            int[] third = shuffledBlocks(10, 20, 8);
            assertBitwise(whole, prefillInChunks(b, tokens, third, ones));
        }
    }

    @Test
    void poolSplitIntoSeveralChunksGivesTheSameLogits() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 11, true);
        int[] tokens = TinyModels.randomTokens(12, 30, QWEN3.vocabSize());
        int[] table = shuffledBlocks(13, 16, 8);
        List<float[]> single;
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 16, 2)) {
            assertEquals(1, b.kvCache().chunks().size());
            single = prefillInChunks(b, tokens, table, 30);
        }
        long perBlock = QWEN3.numLayers() * 2L * QWEN3.numKvHeads() * 4 * QWEN3.headDim() * 4;
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 16, 2, 3 * perBlock)) {
            assertEquals(3, b.kvCache().blocksPerChunk());
            assertEquals(6, b.kvCache().chunks().size());
            assertEquals(4 * perBlock - 3 * perBlock, b.kvCache().chunks().get(5).capacity());
            assertBitwise(single, prefillInChunks(b, tokens, table, 17, 13));
        }
    }

    @Test
    void keysSitInTheRawChunksWhereKvCacheLayoutSays() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 14, true);
        int[] tokens = TinyModels.randomTokens(15, 30, QWEN3.vocabSize());
        NaiveReference ref = new NaiveReference(QWEN3, store);
        ref.logitsAll(tokens);
        long perBlock = QWEN3.numLayers() * 2L * QWEN3.numKvHeads() * 8 * QWEN3.headDim() * 4;
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 8, 10, 1, 4 * perBlock)) {
            int[] table = shuffledBlocks(16, 10, 4);
            b.forward(List.of(slice(1, tokens, 0, 30, table, LogitsMode.LAST)));
            KvCacheLayout layout = b.kvLayout();
            CpuKvCache cache = b.kvCache();
            List<ByteBuffer> chunks = cache.chunks();
            int d = QWEN3.headDim();
            double maxDiff = 0;
            for (int layer = 0; layer < QWEN3.numLayers(); layer++) {
                for (int head = 0; head < QWEN3.numKvHeads(); head++) {
                    for (int pos = 0; pos < 30; pos++) {
                        int block = table[pos / 8];
                        int slot = pos % 8;
                        for (int kOrV = 0; kOrV < 2; kOrV++) {
                            // element index in the whole pool, turned into (chunk, byte offset)
                            long element = layout.elementIndex(block, layer, kOrV, head) + (long) slot * d;
                            long poolByte = element * layout.dtype().bytes();
                            ByteBuffer chunk = chunks.get((int) (poolByte / (cache.blocksPerChunk() * perBlock)));
                            int at = (int) (poolByte % (cache.blocksPerChunk() * perBlock));
                            assertEquals(cache.chunkIndex(block), (int) (poolByte / (cache.blocksPerChunk() * perBlock)));
                            assertEquals(cache.byteOffsetInChunk(block), at - (poolByte - (long) block * perBlock));
                            double[] expected = (kOrV == 0 ? ref.keys : ref.values).get(layer).get(pos);
                            for (int e = 0; e < d; e++) {
                                float stored = chunk.getFloat(at + e * 4);
                                maxDiff = Math.max(maxDiff, Math.abs(stored - expected[head * d + e]));
                            }
                        }
                    }
                }
            }
            assertTrue(maxDiff < 1e-4, "max |K,V - reference| = " + maxDiff);
            ByteBuffer blockView = cache.block(table[1]);
            assertEquals(perBlock, blockView.capacity());
            long firstK = layout.elementIndex(0, 2, 0, 1) * 4;
            assertEquals((float) ref.keys.get(2).get(8)[d], blockView.getFloat((int) firstK), 1e-4);
        }
    }

    // ---- batching --------------------------------------------------------------------------------------------

    @Test
    void decodeInABatchOfEightIsBitwiseTheSameAsAlone() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 17, true);
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 64, 2)) {
            int[][] prompts = new int[8][];
            int[][] tables = new int[8][];
            int[] order = shuffledBlocks(18, 64, 64);
            for (int s = 0; s < 8; s++) {
                prompts[s] = TinyModels.randomTokens(100 + s, 5 + 3 * s, QWEN3.vocabSize());
                tables[s] = Arrays.copyOfRange(order, s * 8, s * 8 + 8);
                b.forward(List.of(slice(s, prompts[s], 0, prompts[s].length, tables[s], LogitsMode.LAST)));
            }
            int[] next = {7, 42, 299, 0, 150, 3, 77, 8};
            for (int step = 0; step < 3; step++) {
                List<SequenceSlice> batch = new ArrayList<>();
                for (int s = 0; s < 8; s++) {
                    int pos = prompts[s].length + step;
                    batch.add(new SequenceSlice(s, new int[] {next[s]}, pos, tables[s], LogitsMode.LAST));
                }
                // sequence 3 alone first, then the whole batch (rewriting its K/V with the same values)
                float[] alone = b.forward(List.of(batch.get(3))).get(0);
                List<float[]> together = b.forward(batch);
                assertEquals(8, together.size());
                assertArrayEquals(alone, together.get(3), 0f);
                // and every other member alone equals its row in the batch
                for (int s = 0; s < 8; s++) {
                    assertArrayEquals(together.get(s), b.forward(List.of(batch.get(s))).get(0), 0f, "seq " + s);
                }
            }
        }
    }

    @Test
    void mixedBatchOfPrefillAndDecodesMatchesSeparateRunsAndTheReference() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 19, true);
        NaiveReference naive = new NaiveReference(QWEN3, store);
        int[] a = TinyModels.randomTokens(20, 13, QWEN3.vocabSize());
        int[] c = TinyModels.randomTokens(21, 9, QWEN3.vocabSize());
        int[] p = TinyModels.randomTokens(22, 17, QWEN3.vocabSize());
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 32, 2)) {
            int[] ta = {0, 5, 10, 15};
            int[] tc = {1, 6, 11};
            int[] tp = {31, 30, 29, 28, 27};
            b.forward(List.of(slice(1, a, 0, 12, ta, LogitsMode.NONE), slice(2, c, 0, 8, tc, LogitsMode.NONE)));
            List<float[]> mixed = b.forward(List.of(
                    slice(1, a, 12, 13, ta, LogitsMode.LAST),
                    slice(3, p, 0, 17, tp, LogitsMode.ALL),
                    slice(2, c, 8, 9, tc, LogitsMode.LAST)));
            assertEquals(1 + 17 + 1, mixed.size());
            assertMatchesReference(mixed.subList(0, 1), new double[][] {naive.logitsAll(a)[12]});
            assertMatchesReference(mixed.subList(1, 18), naive.logitsAll(p));
            assertMatchesReference(mixed.subList(18, 19), new double[][] {naive.logitsAll(c)[8]});

            assertArrayEquals(mixed.get(0), b.forward(List.of(slice(1, a, 12, 13, ta, LogitsMode.LAST))).get(0), 0f);
            assertBitwise(mixed.subList(1, 18), b.forward(List.of(slice(3, p, 0, 17, tp, LogitsMode.ALL))));
            assertArrayEquals(mixed.get(18), b.forward(List.of(slice(2, c, 8, 9, tc, LogitsMode.LAST))).get(0), 0f);
        }
    }

    @Test
    void oneAndTwoThreadsGiveBitwiseIdenticalLogits() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 23, true);
        int[] tokens = TinyModels.randomTokens(24, 30, QWEN3.vocabSize());
        int[] table = shuffledBlocks(25, 10, 8);
        List<float[]> one;
        List<float[]> batchOne;
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 10, 1)) {
            one = prefillInChunks(b, tokens, table, 30);
            batchOne = b.forward(List.of(new SequenceSlice(1, new int[] {5}, 30, table, LogitsMode.LAST)));
        }
        for (int threads : new int[] {2, 3}) {
            try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 10, threads)) {
                assertEquals(threads, b.threads());
                assertBitwise(one, prefillInChunks(b, tokens, table, 30));
                assertBitwise(batchOne,
                        b.forward(List.of(new SequenceSlice(1, new int[] {5}, 30, table, LogitsMode.LAST))));
            }
        }
    }

    @Test
    void logitsModesReturnTheRowsAskedFor() {
        InMemoryTensorStore store = TinyModels.randomWeights(LLAMA, 26, false);
        int[] tokens = TinyModels.randomTokens(27, 10, LLAMA.vocabSize());
        try (CpuBackend b = CpuBackend.create(LLAMA, store, 4, 12, 2)) {
            List<float[]> all = b.forward(List.of(slice(1, tokens, 0, 10, new int[] {0, 1, 2}, LogitsMode.ALL)));
            assertEquals(10, all.size());
            assertEquals(LLAMA.vocabSize(), all.get(9).length);
            assertEquals(0, b.forward(List.of(slice(1, tokens, 0, 10, new int[] {3, 4, 5}, LogitsMode.NONE))).size());
            List<float[]> last = b.forward(List.of(slice(1, tokens, 0, 10, new int[] {6, 7, 8}, LogitsMode.LAST)));
            assertEquals(1, last.size());
            assertArrayEquals(all.get(9), last.get(0), 0f);
            assertEquals(List.of(), b.forward(List.of()));
        }
    }

    // ---- validation and lifecycle ----------------------------------------------------------------------------

    @Test
    void invalidSlicesAreRejectedBeforeAnyKvWrite() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 28, true);
        try (CpuBackend b = CpuBackend.create(QWEN3, store, 4, 8, 2)) {
            int[] tokens = TinyModels.randomTokens(29, 9, QWEN3.vocabSize());
            SequenceSlice good = slice(1, tokens, 0, 9, new int[] {0, 1, 2}, LogitsMode.LAST);
            byte[] before = snapshot(b);
            List<List<SequenceSlice>> bad = List.of(
                    List.of(good, slice(2, tokens, 0, 9, new int[] {3, 4}, LogitsMode.LAST)),
                    List.of(good, new SequenceSlice(3, new int[] {1, QWEN3.vocabSize()}, 0, new int[] {5},
                            LogitsMode.LAST)),
                    List.of(good, new SequenceSlice(4, new int[] {-1}, 0, new int[] {5}, LogitsMode.LAST)),
                    List.of(good, new SequenceSlice(5, new int[] {1}, QWEN3.maxPositions(),
                            new int[QWEN3.maxPositions() / 4 + 1], LogitsMode.LAST)),
                    List.of(good, new SequenceSlice(6, new int[] {1}, 0, new int[] {8}, LogitsMode.LAST)),
                    List.of(good, new SequenceSlice(7, new int[] {1}, -1, new int[] {5}, LogitsMode.LAST)),
                    List.of(good, new SequenceSlice(8, new int[0], 0, new int[] {5}, LogitsMode.LAST)));
            List<String> expectedWords = List.of("block table", "vocabulary", "vocabulary", "max_position_embeddings",
                    "outside [0, 8)", "negative", "no tokens");
            for (int i = 0; i < bad.size(); i++) {
                List<SequenceSlice> batch = bad.get(i);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.forward(batch));
                assertTrue(e.getMessage().contains(expectedWords.get(i)), e.getMessage());
                assertTrue(e.getMessage().contains("sequence " + (i + 2)), e.getMessage());
            }
            assertArrayEquals(before, snapshot(b), "no KV written by a rejected batch");
            assertThrows(IllegalArgumentException.class, () -> b.forward(null));
            b.forward(List.of(good));
            assertTrue(!Arrays.equals(before, snapshot(b)));
        }
    }

    @Test
    void layoutSizingAndLifecycle() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 30, false);
        CpuBackend b = CpuBackend.create(QWEN3, store, 16, 5, 2);
        assertEquals(new KvCacheLayout(3, 2, 16, 16, 5, DType.F32), b.kvLayout());
        assertEquals(b.kvLayout().bytesPerBlock(), b.kvCache().bytesPerBlock());
        assertEquals(5 * b.kvLayout().bytesPerBlock(), b.kvCache().chunks().get(0).capacity());
        assertEquals("cpu", b.name());
        assertEquals(QWEN3, b.config());
        b.close();
        b.close();
        assertThrows(IllegalStateException.class,
                () -> b.forward(List.of(new SequenceSlice(1, new int[] {1}, 0, new int[] {0}, LogitsMode.LAST))));

        long perBlock = b.kvLayout().bytesPerBlock();
        try (CpuBackend sized = CpuBackend.createWithKvBytes(QWEN3, store, 16, 7 * perBlock + perBlock / 2, 1)) {
            assertEquals(7, sized.kvLayout().numBlocks());
        }
        assertThrows(IllegalArgumentException.class,
                () -> CpuBackend.createWithKvBytes(QWEN3, store, 16, perBlock - 1, 1));
        try (CpuBackend byFraction = CpuBackend.createWithCacheFraction(QWEN3, store, 16, 0.001, 1)) {
            long expectedMax = (long) (0.001 * Runtime.getRuntime().maxMemory()) / perBlock;
            assertTrue(byFraction.kvLayout().numBlocks() >= 1);
            assertTrue(byFraction.kvLayout().numBlocks() <= Math.max(1, expectedMax) + 1,
                    byFraction.kvLayout().numBlocks() + " blocks");
        }
        assertThrows(IllegalArgumentException.class,
                () -> CpuBackend.createWithCacheFraction(QWEN3, store, 16, 1.5, 1));
        assertThrows(IllegalArgumentException.class, () -> CpuBackend.create(QWEN3, store, 16, 5, 0));
    }

    @Test
    void missingOrMisshapenTensorsAreCheckpointErrors() {
        InMemoryTensorStore store = TinyModels.randomWeights(QWEN3, 31, false);
        store.remove("model.layers.2.self_attn.k_norm.weight");
        CheckpointException missing = assertThrows(CheckpointException.class,
                () -> CpuBackend.create(QWEN3, store, 4, 4, 1));
        assertTrue(missing.getMessage().contains("model.layers.2.self_attn.k_norm.weight"), missing.getMessage());

        InMemoryTensorStore llama = TinyModels.randomWeights(LLAMA, 32, false);
        llama.put("model.layers.1.mlp.down_proj.weight", new float[LLAMA.intermediateSize() * LLAMA.hiddenSize()],
                LLAMA.intermediateSize(), LLAMA.hiddenSize());
        CheckpointException shape = assertThrows(CheckpointException.class,
                () -> CpuBackend.create(LLAMA, llama, 4, 4, 1));
        assertTrue(shape.getMessage().contains("down_proj"), shape.getMessage());
    }
}
