package io.distserve.engine.tokenizer;

import java.util.Arrays;

/**
 * Turns generated token ids into streamed text deltas, the vLLM way: only a small window of recent tokens is
 * decoded each time, from {@code prefixOffset} (context already emitted) to the end, and the delta is what the window
 * decodes to beyond the text of {@code [prefixOffset, readOffset)}. While the window's text ends with U+FFFD (a
 * multi-byte character whose bytes are split over tokens that have not all arrived), nothing is emitted. The cost
 * per token is O(window), never O(sequence).
 *
 * <p>Window decoding relies on the tokenizer decoding a concatenation of complete characters as the concatenation of
 * their texts, which byte-level BPE tokenizers do; the few prompt tokens before the first generated one are used as
 * left context for tokenizers whose pieces depend on it (leading spaces). One instance per sequence; not
 * thread-safe.
 */
public final class IncrementalDetokenizer {

    /** Prompt tokens kept as left context (vLLM uses 5). */
    static final int CONTEXT_TOKENS = 5;
    /**
     * Tokens held back at most while waiting for a character to complete. UTF-8 needs at most 4 bytes per character,
     * so beyond this the bytes are invalid and waiting longer would only grow the window: emit the replacement.
     */
    static final int MAX_HELD_TOKENS = 6;
    private static final char REPLACEMENT = '\uFFFD';

    private final TextTokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private int[] tokens;
    private int size;
    private int prefixOffset;
    private int readOffset;
    /** The text of {@code [prefixOffset, readOffset)}, cached because it only changes when offsets move. */
    private String prefixText;

    /**
     * @param promptTokens the prompt; only its last {@value #CONTEXT_TOKENS} tokens are kept, as context that is
     *                     never emitted
     */
    public IncrementalDetokenizer(TextTokenizer tokenizer, boolean skipSpecialTokens, int[] promptTokens) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
        int context = Math.min(CONTEXT_TOKENS, promptTokens.length);
        this.tokens = Arrays.copyOfRange(promptTokens, promptTokens.length - context,
                promptTokens.length - context + Math.max(16, context * 2));
        this.size = context;
        this.prefixOffset = 0;
        this.readOffset = context;
        this.prefixText = decode(prefixOffset, readOffset);
    }

    /** Adds one generated token and returns the text it completes (often empty while a character is split). */
    public String next(int tokenId) {
        if (size == tokens.length) {
            compact();
        }
        tokens[size++] = tokenId;
        String text = decode(prefixOffset, size);
        boolean incomplete = !text.isEmpty() && text.charAt(text.length() - 1) == REPLACEMENT;
        if (incomplete && size - readOffset < MAX_HELD_TOKENS) {
            return "";
        }
        return advance(text);
    }

    /** Emits whatever is still held back (e.g. the bytes of an unfinished character) at the end of the sequence. */
    public String flush() {
        if (readOffset == size) {
            return "";
        }
        return advance(decode(prefixOffset, size));
    }

    private String advance(String text) {
        // Without a common prefix (a tokenizer whose window decoding changed the earlier text), we still only ever
        // append: the delta is what lies beyond the previously decoded length.
        String delta = text.length() > prefixText.length() ? text.substring(prefixText.length()) : "";
        prefixOffset = readOffset;
        readOffset = size;
        prefixText = decode(prefixOffset, readOffset);
        return delta;
    }

    /** Drops tokens before prefixOffset, which will never be decoded again, so memory stays O(window). */
    private void compact() {
        int keep = size - prefixOffset;
        int[] next = new int[Math.max(16, keep * 2)];
        System.arraycopy(tokens, prefixOffset, next, 0, keep);
        tokens = next;
        size = keep;
        readOffset -= prefixOffset;
        prefixOffset = 0;
    }

    private String decode(int from, int to) {
        if (from == to) {
            return "";
        }
        return tokenizer.decode(Arrays.copyOfRange(tokens, from, to), skipSpecialTokens);
    }
}
