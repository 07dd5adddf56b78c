package io.distserve.engine.sampling;

import java.util.Arrays;

/**
 * The repetition penalty of each logit row of a step (Hugging Face semantics, {@link Sampler#applyRepetitionPenalty}:
 * each distinct token seen so far, prompt and output, has its logit divided by the penalty when positive and
 * multiplied by it otherwise) and the tokens it applies to. A penalty of 1 leaves the row alone. Row {@code r}'s
 * tokens are {@code history[r][0 .. length[r])} (the sequence's own token buffer: read, never kept past the step).
 */
public record RepetitionPenalties(float[] penalty, int[][] history, int[] length) {

    public RepetitionPenalties {
        if (penalty.length != history.length || penalty.length != length.length) {
            throw new IllegalArgumentException("penalties for " + penalty.length + " rows, histories for "
                    + history.length + ", lengths for " + length.length);
        }
        for (int r = 0; r < penalty.length; r++) {
            if (!(penalty[r] > 0) || Float.isInfinite(penalty[r])) {
                throw new IllegalArgumentException("row " + r + ": repetition penalty must be finite and > 0, got "
                        + penalty[r]);
            }
            if (penalty[r] != 1f && (length[r] < 0 || length[r] > history[r].length)) {
                throw new IllegalArgumentException("row " + r + ": history length " + length[r] + " outside its "
                        + "buffer of " + history[r].length);
            }
        }
    }

    /** No penalty on any of {@code rows} rows. */
    public static RepetitionPenalties none(int rows) {
        float[] p = new float[rows];
        Arrays.fill(p, 1f);
        return new RepetitionPenalties(p, new int[rows][], new int[rows]);
    }

    public int rows() {
        return penalty.length;
    }

    /** Whether row {@code r} is penalised. */
    public boolean applies(int r) {
        return penalty[r] != 1f;
    }

    /** Whether any row is penalised. */
    public boolean any() {
        for (int r = 0; r < penalty.length; r++) {
            if (applies(r)) {
                return true;
            }
        }
        return false;
    }

    /** Tokens of all penalised rows together (the size of their concatenated histories). */
    public long totalTokens() {
        long n = 0;
        for (int r = 0; r < penalty.length; r++) {
            n += applies(r) ? length[r] : 0;
        }
        return n;
    }

    /** Applies row {@code r}'s penalty to its logits, in place (the host reference of the CUDA kernel). */
    public void applyTo(int r, float[] logits) {
        if (applies(r)) {
            Sampler.applyRepetitionPenalty(logits, history[r], length[r], penalty[r]);
        }
    }
}
