package io.distserve.engine.sampling;

import java.util.Arrays;
import java.util.BitSet;
import java.util.random.RandomGenerator;

/**
 * Picks the next token from one row of logits: repetition penalty, then greedy argmax (temperature 0) or
 * temperature, top-k, top-p, min-p and a draw from the per-sequence random generator.
 *
 * <p>The engine samples through {@link io.distserve.engine.ComputeBackend#forwardSampled} ({@link RowSampling} on
 * the host, sample_rows on the GPU); {@link #sample} stays as the independent implementation RowSampling's kept set
 * and probabilities are tested against, and this class keeps the pieces both paths share (greedy token, repetition
 * penalty).
 *
 * <p>Stateless and thread-safe. Built for wide vocabularies (151,936 for Qwen3): no step sorts the whole row. Top-k
 * keeps a heap of k candidates; top-p buckets the probabilities and sorts only the bucket where the nucleus ends
 * (exact, because the nucleus is a prefix of the descending order); min-p is a threshold on
 * the probability ratio to the best token, which renormalisation does not change.
 */
public final class Sampler {

    /** Buckets of {@link #bucket(float)}: weights are at most 1.0f, whose bits shifted right by 20 are 0x3F8. */
    private static final int BUCKETS = (Float.floatToRawIntBits(1.0f) >>> 20) + 1;

    /**
     * Samples one token. The row is used as scratch space and holds garbage afterwards.
     *
     * @param logits        one row of logits, {@code vocab} wide; consumed
     * @param params        the request's sampling parameters
     * @param history       the tokens seen so far (prompt and generated), for the repetition penalty
     * @param historyLength how many entries of {@code history} are valid
     * @param rng           the sequence's own generator (seeded from {@code params.seed()} when given)
     * @throws IllegalStateException when the row holds no finite logit (a broken backend): the caller fails the
     *         sequence
     */
    public int sample(float[] logits, SamplingParams params, int[] history, int historyLength, RandomGenerator rng) {
        if (params.repetitionPenalty() != 1.0) {
            applyRepetitionPenalty(logits, history, historyLength, (float) params.repetitionPenalty());
        }
        if (params.isGreedy()) {
            return argmax(logits);
        }
        int vocab = logits.length;
        if (params.topK() > 0 && params.topK() < vocab) {
            return sampleTopK(logits, params, rng);
        }
        return sampleFull(logits, params, rng);
    }

    /** HF semantics: each distinct seen token once; positive logits divided, the others multiplied. */
    public static void applyRepetitionPenalty(float[] logits, int[] history, int historyLength, float penalty) {
        BitSet seen = new BitSet(logits.length);
        for (int i = 0; i < historyLength; i++) {
            int t = history[i];
            if (t < 0 || t >= logits.length || seen.get(t)) {
                continue;
            }
            seen.set(t);
            float l = logits[t];
            logits[t] = l > 0 ? l / penalty : l * penalty;
        }
    }

    /**
     * True when {@link #sample} reduces to {@link #argmax} for these parameters (greedy, no repetition penalty): the
     * token then depends on the logits row only, so a backend may pick it where the logits are
     * ({@link io.distserve.engine.ComputeBackend#forwardGreedy}).
     */
    public static boolean isPlainGreedy(SamplingParams params) {
        return params.isGreedy() && params.repetitionPenalty() == 1.0;
    }

    /** Highest logit; ties go to the lowest id; NaN never wins. */
    static int argmax(float[] logits) {
        int best = greedyToken(logits);
        if (best < 0) {
            throw new IllegalStateException("logits row has no usable value (all NaN)");
        }
        return best;
    }

    /**
     * The greedy token of a row, as {@link #sample} picks it for plainly greedy parameters: the highest logit, ties
     * to the lowest id, NaN never wins; when no value exceeds -inf, the first -inf entry; -1 when the row is all NaN
     * (unusable).
     */
    public static int greedyToken(float[] logits) {
        int best = -1;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < logits.length; i++) {
            float l = logits[i];
            if (l > bestValue) {
                bestValue = l;
                best = i;
            }
        }
        if (best < 0) {
            // All -inf or NaN: fall back to the first -inf entry if any, else the row is unusable.
            for (int i = 0; i < logits.length; i++) {
                if (logits[i] == Float.NEGATIVE_INFINITY) {
                    return i;
                }
            }
            return -1;
        }
        return best;
    }

    private static int sampleTopK(float[] logits, SamplingParams params, RandomGenerator rng) {
        int k = params.topK();
        // Min-heap of packed (logit, id) keys: the root is the weakest of the k best seen so far.
        long[] heap = new long[k];
        int size = 0;
        for (int i = 0; i < logits.length; i++) {
            float l = logits[i];
            if (Float.isNaN(l)) {
                continue;
            }
            long key = pack(l, i);
            if (size < k) {
                heap[size] = key;
                siftUp(heap, size);
                size++;
            } else if (key > heap[0]) {
                heap[0] = key;
                siftDown(heap, size);
            }
        }
        if (size == 0) {
            throw new IllegalStateException("logits row has no usable value (all NaN)");
        }
        Arrays.sort(heap, 0, size);
        // Descending order: best first, ties lowest id first.
        int[] ids = new int[size];
        double[] weights = new double[size];
        float max = unpackValue(heap[size - 1]);
        if (max == Float.NEGATIVE_INFINITY) {
            return unpackId(heap[size - 1]);
        }
        double invT = 1.0 / params.temperature();
        double total = 0;
        for (int j = 0; j < size; j++) {
            long key = heap[size - 1 - j];
            ids[j] = unpackId(key);
            weights[j] = Math.exp((unpackValue(key) - max) * invT);
            total += weights[j];
        }
        int kept = nucleusAndMinP(weights, size, total, params);
        return draw(ids, weights, kept, rng);
    }

    private static int sampleFull(float[] logits, SamplingParams params, RandomGenerator rng) {
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            if (l > max) {
                max = l;
            }
        }
        if (max == Float.NEGATIVE_INFINITY) {
            return argmax(logits);
        }
        // Turn the row into weights relative to the best token (the best has weight 1) in place.
        double invT = 1.0 / params.temperature();
        double total = 0;
        for (int i = 0; i < logits.length; i++) {
            float l = logits[i];
            float w = Float.isNaN(l) ? 0f : (float) Math.exp((l - max) * invT);
            logits[i] = w;
            total += w;
        }
        float minP = (float) params.minP();
        if (params.topP() < 1.0) {
            return sampleNucleus(logits, total, params, rng);
        }
        double keptTotal = total;
        if (minP > 0) {
            keptTotal = 0;
            for (float w : logits) {
                if (w >= minP) {
                    keptTotal += w;
                }
            }
        }
        double u = rng.nextDouble() * keptTotal;
        double cum = 0;
        int last = -1;
        for (int i = 0; i < logits.length; i++) {
            float w = logits[i];
            if (w > 0 && w >= minP) {
                cum += w;
                last = i;
                if (u < cum) {
                    return i;
                }
            }
        }
        return last;
    }

    /**
     * Top-p (then min-p) over the whole row of weights. Instead of sorting the row, weights are bucketed by their
     * float bits (8 buckets per power of two; the bits of positive floats order like the values): the buckets above
     * the one where the cumulative mass crosses {@code topP} are kept whole, and only that one bucket is sorted to
     * find the exact cut. The result is the same set as a full descending sort would give.
     */
    private static int sampleNucleus(float[] weights, double total, SamplingParams params, RandomGenerator rng) {
        int[] counts = new int[BUCKETS];
        double[] masses = new double[BUCKETS];
        for (float w : weights) {
            if (w > 0) {
                int b = bucket(w);
                counts[b]++;
                masses[b] += w;
            }
        }
        double target = params.topP() * total;
        double above = 0;
        int cutBucket = BUCKETS - 1;
        while (cutBucket > 0 && above + masses[cutBucket] < target) {
            above += masses[cutBucket];
            cutBucket--;
        }
        // The crossing bucket, sorted: best first, ties lowest id first.
        long[] keys = new long[counts[cutBucket]];
        int n = 0;
        int keptWhole = 0;
        for (int b = cutBucket + 1; b < BUCKETS; b++) {
            keptWhole += counts[b];
        }
        int[] ids = new int[keptWhole + keys.length];
        double[] ws = new double[ids.length];
        int k = 0;
        for (int i = 0; i < weights.length; i++) {
            float w = weights[i];
            if (w > 0) {
                int b = bucket(w);
                if (b > cutBucket) {
                    ids[k] = i;
                    ws[k++] = w;
                } else if (b == cutBucket) {
                    keys[n++] = pack(w, i);
                }
            }
        }
        Arrays.sort(keys, 0, n);
        double cum = above;
        for (int j = n - 1; j >= 0 && (cum < target || k == 0); j--) {
            int id = unpackId(keys[j]);
            ids[k] = id;
            ws[k++] = weights[id];
            cum += weights[id];
        }
        // min-p: both it and the nucleus are prefixes of the descending order, so their intersection is a filter.
        float minP = (float) params.minP();
        int kept = 0;
        for (int j = 0; j < k; j++) {
            if (ws[j] >= minP) {
                ids[kept] = ids[j];
                ws[kept++] = ws[j];
            }
        }
        return draw(ids, ws, kept, rng);
    }

    /** Bucket of a positive float weight <= 1: its exponent and top 3 mantissa bits. */
    private static int bucket(float w) {
        return Float.floatToRawIntBits(w) >>> 20;
    }

    /**
     * Given candidates in descending weight order, returns how many to keep: the top-p prefix (the first tokens
     * whose mass reaches topP; at least one) cut further by min-p (weight at least minP times the best).
     */
    private static int nucleusAndMinP(double[] weights, int n, double total, SamplingParams params) {
        int kept = n;
        if (params.topP() < 1.0) {
            double mass = params.topP() * total;
            double cum = 0;
            kept = 0;
            while (kept < n && cum < mass) {
                cum += weights[kept];
                kept++;
            }
            kept = Math.max(kept, 1);
        }
        if (params.minP() > 0) {
            double floor = params.minP() * weights[0];
            int j = 1;
            while (j < kept && weights[j] >= floor) {
                j++;
            }
            kept = j;
        }
        return kept;
    }

    private static int draw(int[] ids, double[] weights, int kept, RandomGenerator rng) {
        double sum = 0;
        for (int j = 0; j < kept; j++) {
            sum += weights[j];
        }
        double u = rng.nextDouble() * sum;
        double cum = 0;
        for (int j = 0; j < kept; j++) {
            cum += weights[j];
            if (u < cum) {
                return ids[j];
            }
        }
        return ids[kept - 1];
    }

    /**
     * Packs (value, id) into a long whose natural order is value ascending, then id descending: sorted ascending and
     * read from the end, it gives the best value first and, among equals, the lowest id first.
     */
    static long pack(float value, int id) {
        int bits = Float.floatToIntBits(value == 0f ? 0f : value); // -0 and +0 compare equal
        int sortable = bits ^ ((bits >> 31) & 0x7FFFFFFF);
        return ((long) sortable << 32) | (0xFFFFFFFFL - id);
    }

    static int unpackId(long key) {
        return (int) (0xFFFFFFFFL - (key & 0xFFFFFFFFL));
    }

    static float unpackValue(long key) {
        int sortable = (int) (key >> 32);
        int bits = sortable ^ ((sortable >> 31) & 0x7FFFFFFF);
        return Float.intBitsToFloat(bits);
    }

    private static void siftUp(long[] heap, int i) {
        long key = heap[i];
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (heap[parent] <= key) {
                break;
            }
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = key;
    }

    private static void siftDown(long[] heap, int size) {
        long key = heap[0];
        int i = 0;
        while (true) {
            int child = 2 * i + 1;
            if (child >= size) {
                break;
            }
            if (child + 1 < size && heap[child + 1] < heap[child]) {
                child++;
            }
            if (heap[child] >= key) {
                break;
            }
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = key;
    }
}
