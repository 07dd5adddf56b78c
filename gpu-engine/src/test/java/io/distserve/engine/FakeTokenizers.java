package io.distserve.engine;

import io.distserve.engine.tokenizer.TextTokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Set;

/** Tokenizers for tests. */
public final class FakeTokenizers {

    private FakeTokenizers() {
    }

    /**
     * Byte-level like HF's: ids 0..255 are single UTF-8 bytes (a character may span 2-4 ids, and decoding an
     * incomplete one yields U+FFFD); ids from 256 are special tokens written {@code <|id|>}.
     */
    public static TextTokenizer bytes(int vocab) {
        return new TextTokenizer() {
            @Override
            public int[] encode(String text) {
                byte[] b = text.getBytes(StandardCharsets.UTF_8);
                int[] ids = new int[b.length];
                for (int i = 0; i < b.length; i++) {
                    ids[i] = b[i] & 0xFF;
                }
                return ids;
            }

            @Override
            public String decode(int[] ids, boolean skipSpecialTokens) {
                StringBuilder sb = new StringBuilder();
                ByteArrayOutputStream run = new ByteArrayOutputStream();
                for (int id : ids) {
                    if (id < 256) {
                        run.write(id);
                    } else {
                        sb.append(run.toString(StandardCharsets.UTF_8));
                        run.reset();
                        if (!skipSpecialTokens) {
                            sb.append("<|").append(id).append("|>");
                        }
                    }
                }
                sb.append(run.toString(StandardCharsets.UTF_8));
                return sb.toString();
            }

            @Override
            public int vocabSize() {
                return vocab;
            }

            @Override
            public Set<Integer> specialTokenIds() {
                return Set.of();
            }

            @Override
            public int tokenId(String token) {
                return -1;
            }

            @Override
            public void close() {
            }
        };
    }

    /** One printable ASCII character per id ({@code '!' + id % 94}); {@code special} decodes to {@code <eos>}. */
    public static TextTokenizer chars(int vocab, int special) {
        return new TextTokenizer() {
            @Override
            public int[] encode(String text) {
                return text.chars().map(c -> c - '!').toArray();
            }

            @Override
            public String decode(int[] ids, boolean skipSpecialTokens) {
                StringBuilder sb = new StringBuilder();
                for (int id : ids) {
                    if (id == special) {
                        if (!skipSpecialTokens) {
                            sb.append("<eos>");
                        }
                    } else {
                        sb.append(charOf(id));
                    }
                }
                return sb.toString();
            }

            @Override
            public int vocabSize() {
                return vocab;
            }

            @Override
            public Set<Integer> specialTokenIds() {
                return Set.of(special);
            }

            @Override
            public int tokenId(String token) {
                return token.length() == 1 ? token.charAt(0) - '!' : -1;
            }

            @Override
            public void close() {
            }
        };
    }

    public static char charOf(int id) {
        return (char) ('!' + id % 94);
    }
}
