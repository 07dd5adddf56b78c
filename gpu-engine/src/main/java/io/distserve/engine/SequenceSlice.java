package io.distserve.engine;

/**
 * The part of one sequence that a forward step computes: {@code tokens} at positions
 * {@code startPosition .. startPosition + tokens.length - 1}, whose K/V are written into the paged cache through
 * {@code blockTable} (which must already cover every position), attending to all earlier positions of the same
 * sequence found through the same table.
 *
 * @param sequenceId  for logging and debugging only
 * @param logits      which rows of logits to return
 */
public record SequenceSlice(long sequenceId, int[] tokens, int startPosition, int[] blockTable, LogitsMode logits) {

    public enum LogitsMode {
        /** No logits (a prefill chunk that is not the last one). */
        NONE,
        /** Logits of the last token only (normal prefill and decode). */
        LAST,
        /** Logits at every position (tests, scoring). */
        ALL
    }

    public int length() {
        return tokens.length;
    }

    public int endPosition() {
        return startPosition + tokens.length;
    }

    public int logitRows() {
        return switch (logits) {
            case NONE -> 0;
            case LAST -> 1;
            case ALL -> tokens.length;
        };
    }
}
