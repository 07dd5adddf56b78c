package io.distserve.engine.sched;

/**
 * One sequence's share of a step: compute the tokens at positions {@code [start, start + length)}.
 *
 * @param samples true when the chunk reaches the end of the sequence's tokens, so a new token is sampled from its
 *                last logits; false for a prefill chunk that is not the last
 */
public record ScheduledChunk(Sequence sequence, int start, int length, boolean samples) {

    public ScheduledChunk {
        if (length < 1 || start < 0) {
            throw new IllegalArgumentException("bad chunk [" + start + ", +" + length + ") of " + sequence);
        }
    }

    /** A prefill chunk (more than the single next token, or the start of a sequence). */
    public boolean isPrefill() {
        return length > 1 || start == 0;
    }
}
