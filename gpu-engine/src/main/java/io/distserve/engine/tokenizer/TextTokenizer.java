package io.distserve.engine.tokenizer;

import java.util.Set;

/** Text to token ids and back. Thread-safe. */
public interface TextTokenizer extends AutoCloseable {

    /** Encodes without adding special tokens (chat templates put them in the text). */
    int[] encode(String text);

    /** Decodes ids to text; special tokens are dropped when {@code skipSpecialTokens}. */
    String decode(int[] ids, boolean skipSpecialTokens);

    /** Number of ids the tokenizer knows (including added tokens). */
    int vocabSize();

    /** Ids of added special tokens (e.g. {@code <|im_end|>}). */
    Set<Integer> specialTokenIds();

    /** Id of a token string, or -1. */
    int tokenId(String token);

    @Override
    void close();
}
