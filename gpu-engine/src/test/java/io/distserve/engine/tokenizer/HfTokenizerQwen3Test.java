package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The real Qwen3 tokenizer through DJL; loaded once for the class (a few seconds on a busy machine). */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HfTokenizerQwen3Test {

    private HfTokenizer tokenizer;

    @BeforeAll
    void load() {
        tokenizer = HfTokenizer.load(TestTokenizers.qwen3Folder());
    }

    @AfterAll
    void close() {
        if (tokenizer != null) {
            tokenizer.close();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "Shanghai is a city that ",
        "上海是中国最大的城市之一，也是全球金融中心。",
        "東京は日本の首都です。ひらがなとカタカナ。",
        "서울은 대한민국의 수도입니다.",
        "القاهرة هي عاصمة مصر.",
        "Москва — столица России.",
        "emoji 👋🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 rainbow 🏳️‍🌈 ok",
        "def f(x):\n\tif x:\n\t\treturn {'a': [1, 2]}\r\n    return None\n",
        "   leading and trailing spaces   ",
        "\n\nnewlines only at the ends\n\n",
        "mixed: naïve café, Æsir, ß, İstanbul, ﬁ ligature",
    })
    void decodeOfEncodeGivesTheTextBack(String text) {
        int[] ids = tokenizer.encode(text);
        assertThat(ids).isNotEmpty();
        assertThat(tokenizer.decode(ids, false)).isEqualTo(text);
        assertThat(tokenizer.decode(ids, true)).isEqualTo(text);
    }

    @Test
    void knownIdsAreStable() {
        // Computed once with this tokenizer.json; Qwen2/Qwen3 share these byte-level BPE ids.
        assertThat(tokenizer.encode("Hello world")).containsExactly(9707, 1879);
        assertThat(tokenizer.encode("Hello, world!")).containsExactly(9707, 11, 1879, 0);
        assertThat(tokenizer.tokenId("Hello")).isEqualTo(9707);
        assertThat(tokenizer.tokenId("Ġworld")).isEqualTo(1879);
        assertThat(tokenizer.tokenId("<|endoftext|>")).isEqualTo(151643);
        assertThat(tokenizer.tokenId("<|im_start|>")).isEqualTo(151644);
        assertThat(tokenizer.tokenId("<|im_end|>")).isEqualTo(151645);
        assertThat(tokenizer.tokenId("</think>")).isEqualTo(151668);
        assertThat(tokenizer.tokenId("no such token")).isEqualTo(-1);
    }

    @Test
    void vocabSizeCountsAddedTokens() {
        assertThat(tokenizer.vocabSize()).isEqualTo(151669);
    }

    @Test
    void specialTokenIdsAreTheAddedTokensMarkedSpecial() {
        assertThat(tokenizer.specialTokenIds())
                .hasSize(14)
                .contains(151643, 151644, 151645, 151656)
                .doesNotContain(151667, 151668); // <think> and </think> are added but not special
    }

    @Test
    void addedTokensInTextEncodeToTheirSingleId() {
        int[] ids = tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n<think>\n\n</think>");
        assertThat(ids[0]).isEqualTo(151644);
        assertThat(ids).contains(151645, 151667, 151668);
        assertThat(tokenizer.encode("<|endoftext|>")).containsExactly(151643);
    }

    @Test
    void decodeDropsSpecialTokensOnlyWhenAsked() {
        int[] ids = tokenizer.encode("<|im_start|>assistant\n<think>\nok\n</think>\n\nHi!<|im_end|>");
        assertThat(tokenizer.decode(ids, false))
                .isEqualTo("<|im_start|>assistant\n<think>\nok\n</think>\n\nHi!<|im_end|>");
        // <think> is not special, so it stays, as in transformers
        assertThat(tokenizer.decode(ids, true)).isEqualTo("assistant\n<think>\nok\n</think>\n\nHi!");
        assertThat(tokenizer.decode(new int[] {151645}, true)).isEmpty();
    }

    @Test
    void singleIdsAndShortWindowsDecode() {
        assertThat(tokenizer.decode(new int[] {9707}, false)).isEqualTo("Hello");
        assertThat(tokenizer.decode(new int[] {1879}, false)).isEqualTo(" world");
        assertThat(tokenizer.decode(new int[0], false)).isEmpty();
        // one emoji spans several byte-level tokens; a lone piece decodes to U+FFFD, the whole window to the emoji
        int[] wave = tokenizer.encode("🦩"); // flamingo: two byte-level tokens
        assertThat(wave.length).isGreaterThan(1);
        assertThat(tokenizer.decode(Arrays.copyOf(wave, 1), false)).contains("\uFFFD");
        assertThat(tokenizer.decode(wave, false)).isEqualTo("🦩");
    }

    @Test
    void decodesIdsPastTheVocabularyAsNothingLikeHuggingFace() {
        // the embedding's padding rows (151669..151935) have no text
        assertThat(tokenizer.decode(new int[] {9707, 151669, 151935, 1879}, false))
                .isEqualTo(tokenizer.decode(new int[] {9707, 1879}, false));
        assertThatThrownBy(() -> tokenizer.decode(new int[] {-1}, false))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("-1");
    }

    @Test
    void twoThousandTokensEncodeAndDecodeInMilliseconds() {
        String text = "The quick brown fox jumps over the lazy dog; 上海是一座城市。 ".repeat(120);
        int[] ids = tokenizer.encode(text);
        assertThat(ids.length).isBetween(1500, 2500);
        long best = Long.MAX_VALUE;
        for (int round = 0; round < 5; round++) {
            long start = System.nanoTime();
            int[] again = tokenizer.encode(text);
            String back = tokenizer.decode(again, false);
            best = Math.min(best, System.nanoTime() - start);
            assertThat(back).isEqualTo(text);
        }
        // a few ms on an idle core; the bound leaves room for a shared CI machine
        assertThat(best / 1_000_000).isLessThan(100);
    }

    @Test
    void concurrentCallsAgree() throws Exception {
        String text = "Concurrent 並行 encode calls share one native tokenizer. ";
        int[] expected = tokenizer.encode(text);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                results.add(pool.submit(() -> {
                    for (int j = 0; j < 50; j++) {
                        int[] ids = tokenizer.encode(text);
                        if (!Arrays.equals(ids, expected) || !tokenizer.decode(ids, false).equals(text)) {
                            return false;
                        }
                    }
                    return true;
                }));
            }
            for (Future<Boolean> result : results) {
                assertThat(result.get()).isTrue();
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
