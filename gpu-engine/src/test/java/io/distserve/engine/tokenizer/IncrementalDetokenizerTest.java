package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.engine.FakeTokenizers;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class IncrementalDetokenizerTest {

    private static final String TEXT = "Héllo, 世界! 😀 naïve € 𝄞 — fin";

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }

    @Test
    void deltasConcatenateToTheFullDecodeAndNeverShowAReplacementChar() {
        TextTokenizer tok = FakeTokenizers.bytes(300);
        int[] prompt = tok.encode("Prompt: ñ");
        int[] generated = tok.encode(TEXT);
        IncrementalDetokenizer d = new IncrementalDetokenizer(tok, true, prompt);
        StringBuilder out = new StringBuilder();
        List<String> deltas = new ArrayList<>();
        for (int id : generated) {
            String delta = d.next(id);
            deltas.add(delta);
            out.append(delta);
        }
        out.append(d.flush());
        assertThat(out.toString()).isEqualTo(tok.decode(generated, true)).isEqualTo(TEXT);
        assertThat(deltas).noneMatch(s -> s.indexOf('\uFFFD') >= 0);
        // Multi-byte characters really were split: some tokens produced nothing.
        assertThat(deltas).contains("");
    }

    @Test
    void specialTokensAreSkippedOrShownAsAsked() {
        TextTokenizer tok = FakeTokenizers.bytes(300);
        int[] generated = concat(tok.encode("a€"), new int[] {257}, tok.encode("b"), new int[] {258, 259},
                tok.encode("😀"));
        for (boolean skip : new boolean[] {true, false}) {
            IncrementalDetokenizer d = new IncrementalDetokenizer(tok, skip, new int[] {1, 2});
            StringBuilder out = new StringBuilder();
            for (int id : generated) {
                out.append(d.next(id));
            }
            out.append(d.flush());
            assertThat(out.toString()).isEqualTo(tok.decode(generated, skip));
        }
        assertThat(tok.decode(generated, false)).contains("<|257|>");
    }

    @Test
    void flushEmitsAnUnfinishedCharacterAtTheEnd() {
        TextTokenizer tok = FakeTokenizers.bytes(300);
        int[] euro = tok.encode("€"); // 3 bytes
        IncrementalDetokenizer d = new IncrementalDetokenizer(tok, true, new int[] {65});
        assertThat(d.next('x')).isEqualTo("x");
        assertThat(d.next(euro[0])).isEmpty();
        assertThat(d.next(euro[1])).isEmpty();
        assertThat(d.flush()).isEqualTo("\uFFFD");
        assertThat(d.flush()).isEmpty();
    }

    @Test
    void invalidBytesDoNotHoldTheStreamForever() {
        TextTokenizer tok = FakeTokenizers.bytes(300);
        IncrementalDetokenizer d = new IncrementalDetokenizer(tok, true, new int[0]);
        StringBuilder out = new StringBuilder();
        // A run of lone continuation bytes never becomes valid.
        for (int i = 0; i < 20; i++) {
            out.append(d.next(0x80));
        }
        assertThat(out.length()).isGreaterThan(0);
    }

    @Test
    void costPerTokenIsBoundedByTheWindowNotTheSequence() {
        int[] longest = {0};
        TextTokenizer bytes = FakeTokenizers.bytes(300);
        TextTokenizer counting = new TextTokenizer() {
            @Override
            public int[] encode(String text) {
                return bytes.encode(text);
            }

            @Override
            public String decode(int[] ids, boolean skip) {
                longest[0] = Math.max(longest[0], ids.length);
                return bytes.decode(ids, skip);
            }

            @Override
            public int vocabSize() {
                return 300;
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
        String text = IntStream.range(0, 500).mapToObj(i -> "ab€😀").reduce("", String::concat);
        int[] ids = bytes.encode(text);
        IncrementalDetokenizer d = new IncrementalDetokenizer(counting, true, ids);
        StringBuilder out = new StringBuilder();
        for (int id : ids) {
            out.append(d.next(id));
        }
        out.append(d.flush());
        assertThat(out.toString()).isEqualTo(text);
        assertThat(longest[0]).isLessThanOrEqualTo(2 * IncrementalDetokenizer.MAX_HELD_TOKENS);
    }
}
