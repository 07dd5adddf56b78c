package io.distserve.engine.cpu;

import io.distserve.engine.SequenceSlice;
import io.distserve.engine.model.ModelConfig;

/**
 * Causal grouped-query self-attention over the paged KV cache.
 *
 * <p>For all tokens of the step: project q, k, v (one GEMM each over the whole batch); per head, RMSNorm q and k
 * (Qwen3) and rotate them to the token's absolute position; write k and v into the cache at the token's
 * (block, slot); then, per slice and KV head, gather that head's keys and values of positions
 * {@code 0 .. end-1} from the cache (prefix positions written by earlier steps included) and let every query
 * head of the group attend causally; finally project back with {@code o_proj}.
 */
final class Attention {

    private final ModelConfig config;
    private final CpuKvCache cache;
    private final Rope rope;
    private final MatMul mm;
    private final int headDim;
    private final int heads;
    private final int kvHeads;
    private final int group;
    private final float scale;

    Attention(ModelConfig config, CpuKvCache cache, Rope rope, MatMul mm) {
        this.config = config;
        this.cache = cache;
        this.rope = rope;
        this.mm = mm;
        this.headDim = config.headDim();
        this.heads = config.numHeads();
        this.kvHeads = config.numKvHeads();
        this.group = heads / kvHeads;
        this.scale = (float) (1.0 / Math.sqrt(headDim));
    }

    /** Per-step buffers, sized to the batch. */
    static final class Scratch {
        final float[] q;
        final float[] k;
        final float[] v;
        final float[] attn;
        /** Per worker: one KV head's keys, values (positions 0..maxEnd-1) and one row of scores. */
        final float[][] keys;
        final float[][] values;
        final float[][] scores;

        Scratch(ModelConfig c, StepBatch b, int workers) {
            q = new float[b.n * c.qDim()];
            k = new float[b.n * c.kvDim()];
            v = new float[b.n * c.kvDim()];
            attn = new float[b.n * c.qDim()];
            keys = new float[workers][b.maxEnd * c.headDim()];
            values = new float[workers][b.maxEnd * c.headDim()];
            scores = new float[workers][b.maxEnd];
        }
    }

    /** {@code out = o_proj(attention(xn))} for every token of the batch; writes the layer's K/V into the cache. */
    void forward(int layer, CpuWeights.Layer w, StepBatch b, float[] xn, Scratch s, float[] out) {
        int n = b.n;
        int qDim = config.qDim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenSize();
        mm.matmul(hidden, xn, n, new MatMul.Projection(w.wq(), qDim, s.q),
                new MatMul.Projection(w.wk(), kvDim, s.k), new MatMul.Projection(w.wv(), kvDim, s.v));

        mm.parallelFor(n, 8L * (qDim + kvDim), (part, from, to) -> {
            for (int t = from; t < to; t++) {
                positionQk(w, s, t, b.positions[t]);
            }
        });
        writeKv(layer, b, s);

        // units ordered head-major, so that contiguous ranges share out a long prefill slice's heads
        int slices = b.slices.size();
        int units = slices * kvHeads;
        long work = (long) b.n / b.slices.size() * b.maxEnd * headDim * 2 * group + (long) b.maxEnd * headDim;
        mm.parallelFor(units, work, (part, from, to) -> {
            for (int u = from; u < to; u++) {
                attendSliceHead(layer, b, u % slices, u / slices, s, part);
            }
        });

        mm.matmul(w.wo(), hidden, qDim, s.attn, n, out);
    }

    /** q/k norm (Qwen3) and RoPE for token {@code t} at {@code pos}, in place. */
    private void positionQk(CpuWeights.Layer w, Scratch s, int t, int pos) {
        double eps = config.rmsNormEps();
        for (int h = 0; h < heads; h++) {
            int o = t * heads * headDim + h * headDim;
            if (w.qNorm() != null) {
                RmsNorm.apply(s.q, o, w.qNorm(), s.q, o, headDim, eps);
            }
            rope.rotate(s.q, o, pos);
        }
        for (int h = 0; h < kvHeads; h++) {
            int o = t * kvHeads * headDim + h * headDim;
            if (w.kNorm() != null) {
                RmsNorm.apply(s.k, o, w.kNorm(), s.k, o, headDim, eps);
            }
            rope.rotate(s.k, o, pos);
        }
    }

    private void writeKv(int layer, StepBatch b, Scratch s) {
        int bs = cache.layout().blockSize();
        for (int si = 0; si < b.slices.size(); si++) {
            SequenceSlice slice = b.slices.get(si);
            int[] table = slice.blockTable();
            for (int i = 0; i < slice.length(); i++) {
                int t = b.sliceStart[si] + i;
                int pos = b.positions[t];
                int block = table[pos / bs];
                int slot = pos % bs;
                for (int h = 0; h < kvHeads; h++) {
                    int o = (t * kvHeads + h) * headDim;
                    cache.writeSlot(block, layer, 0, h, slot, s.k, o);
                    cache.writeSlot(block, layer, 1, h, slot, s.v, o);
                }
            }
        }
    }

    /** All query heads of KV head {@code g}, for every token of slice {@code si}. */
    private void attendSliceHead(int layer, StepBatch b, int si, int g, Scratch s, int worker) {
        SequenceSlice slice = b.slices.get(si);
        int end = slice.endPosition();
        float[] keys = s.keys[worker];
        float[] values = s.values[worker];
        float[] scores = s.scores[worker];
        gather(layer, slice.blockTable(), g, end, keys, values);

        for (int i = 0; i < slice.length(); i++) {
            int t = b.sliceStart[si] + i;
            int pos = b.positions[t];
            for (int h = g * group; h < (g + 1) * group; h++) {
                int qo = (t * heads + h) * headDim;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j <= pos; j++) {
                    float score = MatMul.dot(s.q, qo, keys, j * headDim, headDim) * scale;
                    scores[j] = score;
                    max = Math.max(max, score);
                }
                float sum = 0f;
                for (int j = 0; j <= pos; j++) {
                    float e = (float) Math.exp(scores[j] - max);
                    scores[j] = e;
                    sum += e;
                }
                float[] o = s.attn;
                java.util.Arrays.fill(o, qo, qo + headDim, 0f);
                for (int j = 0; j <= pos; j++) {
                    float p = scores[j];
                    int vo = j * headDim;
                    for (int d = 0; d < headDim; d++) {
                        o[qo + d] += p * values[vo + d];
                    }
                }
                float inv = 1f / sum;
                for (int d = 0; d < headDim; d++) {
                    o[qo + d] *= inv;
                }
            }
        }
    }

    /** Copies KV head {@code g}'s keys and values of positions {@code 0 .. end-1} out of the paged cache. */
    private void gather(int layer, int[] table, int g, int end, float[] keys, float[] values) {
        int bs = cache.layout().blockSize();
        for (int j = 0, first = 0; first < end; j++, first += bs) {
            int slots = Math.min(bs, end - first);
            cache.readRun(table[j], layer, 0, g, slots, keys, first * headDim);
            cache.readRun(table[j], layer, 1, g, slots, values, first * headDim);
        }
    }
}
