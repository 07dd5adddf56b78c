package io.distserve.engine.sampling;

/**
 * The sampling of one logit row given a uniform number from the caller: the host reference of the CUDA kernel
 * {@code sample_rows} (src/main/cuda/sampling.cu), with which it agrees bit for bit, and the host path of
 * {@link io.distserve.engine.ComputeBackend#forwardSampled}. The kept set and its probabilities are those of
 * {@link Sampler} (temperature, top-k, top-p over the descending order keeping at least one, min-p relative to the
 * best token), up to a fixed-point weight: each weight {@code w <= 1} counts as the integer mass
 * {@code floor(w * 2^42)}, so that all sums are exact and order-independent (weights below 2^-42 are never drawn).
 * The draw is by inverse CDF over the kept tokens in ascending id order (not the Sampler's order, so the same
 * generator state can pick a different token than {@link Sampler#sample}; the distribution is the same).
 *
 * <p>Repetition penalty is applied to the row before this ({@link RepetitionPenalties}; on the GPU the
 * repetition_penalty kernel).
 */
public final class RowSampling {

    /** Fixed-point scale of the weights: 2^42 (vocabularies up to 2^21 entries cannot overflow a long). */
    static final double Q_SCALE = 4398046511104.0;

    private RowSampling() {
    }

    static long q(float w) {
        return (long) ((double) w * Q_SCALE);
    }

    /**
     * Samples one token from {@code row} (consumed: it holds the weights afterwards).
     *
     * @param temperature 0 or less: greedy ({@link Sampler#greedyToken})
     * @param topK        0 or less, or at least the vocabulary: off
     * @param topP        1 or more: off
     * @param minP        0 or less: off
     * @param u           uniform in [0, 1)
     * @return the token; -1 only for an all-NaN row (as {@link Sampler#greedyToken})
     */
    public static int sample(float[] row, float temperature, int topK, float topP, float minP, double u) {
        int vocab = row.length;
        float mx = Float.NEGATIVE_INFINITY;
        for (float v : row) {
            if (v > mx) {
                mx = v;
            }
        }
        if (!(temperature > 0f) || mx == Float.NEGATIVE_INFINITY) {
            return Sampler.greedyToken(row);
        }
        double t = temperature;
        long total = 0;
        long positive = 0;
        for (int j = 0; j < vocab; j++) {
            float v = row[j];
            float w = Float.isNaN(v) ? 0f : (v == mx ? 1f : (float) Math.exp((double) (v - mx) / t));
            row[j] = w;
            long qj = q(w);
            total += qj;
            positive += qj > 0 ? 1 : 0;
        }
        int selKey = -1;
        long selTies = 0;
        long candMass = total;
        long aboveSel = total;
        if (topK > 0 && topK < positive) {
            long[] s = select(row, -1, false, topK);
            selKey = (int) s[0];
            selTies = topK - s[2];
            aboveSel = s[1];
            candMass = s[1] + selTies * q(Float.intBitsToFloat(selKey));
        }
        if (topP < 1f) {
            long target = (long) Math.ceil((double) topP * (double) candMass);
            target = Math.max(1, Math.min(target, candMass));
            if (selKey >= 0 && aboveSel < target) {
                long qt = q(Float.intBitsToFloat(selKey));
                selTies = Math.min(selTies, (target - aboveSel + qt - 1) / qt);
            } else {
                long[] s = select(row, selKey, true, target);
                long qt = q(Float.intBitsToFloat((int) s[0]));
                selKey = (int) s[0];
                selTies = Math.min(s[3], (target - s[1] + qt - 1) / qt);
            }
        }
        float floor = minP > 0f ? minP : 0f;
        long tieSeen = 0;
        long kept = 0;
        for (float w : row) {
            if (keep(w, selKey, selTies, floor, tieSeen)) {
                kept += q(w);
            }
            if (q(w) > 0 && Float.floatToRawIntBits(w) == selKey) {
                tieSeen++;
            }
        }
        long r = (long) (Math.max(u, 0.0) * (double) kept);
        if (r >= kept) {
            r = kept - 1;
        }
        long cum = 0;
        tieSeen = 0;
        for (int j = 0; j < vocab; j++) {
            float w = row[j];
            if (keep(w, selKey, selTies, floor, tieSeen)) {
                cum += q(w);
                if (cum > r) {
                    return j;
                }
            }
            if (q(w) > 0 && Float.floatToRawIntBits(w) == selKey) {
                tieSeen++;
            }
        }
        throw new IllegalStateException("no token reached the draw (kept mass " + kept + ")");
    }

    private static boolean keep(float w, int selKey, long selTies, float floor, long tieRank) {
        if (q(w) <= 0 || !(w >= floor)) {
            return false;
        }
        int key = Float.floatToRawIntBits(w);
        return key > selKey || (key == selKey && tieRank < selTies);
    }

    /**
     * Radix selection as the kernel does it: the largest key K such that the count (or mass) of the entries with
     * q > 0, key > lowKey and key >= K reaches need.
     *
     * @return {key, mass above, count above, count of ties at key}
     */
    private static long[] select(float[] w, int lowKey, boolean byMass, long need) {
        int prefix = 0;
        int mask = 0;
        long aboveMass = 0;
        long aboveCount = 0;
        long ties = 0;
        for (int shift = 24; shift >= 0; shift -= 8) {
            long[] hc = new long[256];
            long[] hm = new long[256];
            for (float x : w) {
                long qx = q(x);
                int key = Float.floatToRawIntBits(x);
                if (qx > 0 && key > lowKey && (key & mask) == prefix) {
                    int d = (key >>> shift) & 255;
                    hc[d]++;
                    hm[d] += qx;
                }
            }
            int d = 255;
            for (; d > 0; d--) {
                long have = byMass ? aboveMass + hm[d] : aboveCount + hc[d];
                if (have >= need) {
                    break;
                }
                aboveMass += hm[d];
                aboveCount += hc[d];
            }
            prefix |= d << shift;
            ties = hc[d];
            mask |= 255 << shift;
        }
        return new long[] {prefix, aboveMass, aboveCount, ties};
    }
}
