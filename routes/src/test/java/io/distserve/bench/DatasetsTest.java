package io.distserve.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.engine.tokenizer.ModelTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The workloads, with the demo model's tokenizer; ShareGPT from a small sample in the real format. */
class DatasetsTest {

    @TempDir
    static Path dir;

    static ModelTokenizer tokenizer;

    @BeforeAll
    static void tokenizer() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 1, null).withThreads(1).writeTo(model);
        tokenizer = ModelTokenizer.load(model);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    static Path sample() throws Exception {
        return Path.of(DatasetsTest.class.getResource("/bench/sharegpt_sample.json").toURI());
    }

    @Test
    void randomPromptsAreOrdinaryTokensOfTheAskedLengths() {
        List<BenchRequest> r = Datasets.random(tokenizer.tokenizer(), 200, 100, 20, 0.5, 3, true);
        assertThat(r).hasSize(200);
        var special = tokenizer.tokenizer().specialTokenIds();
        for (BenchRequest q : r) {
            assertThat(q.promptIds()).hasSizeBetween(50, 150);
            assertThat(q.promptTokens()).isEqualTo(q.promptIds().length);
            assertThat(q.outputTokens()).isBetween(10, 30);
            assertThat(Arrays.stream(q.promptIds()).filter(special::contains)).isEmpty();
        }
        // the lengths use the range, not one value
        assertThat(r.stream().mapToInt(BenchRequest::promptTokens).distinct().count()).isGreaterThan(50);
        assertThat(Datasets.random(tokenizer.tokenizer(), 5, 64, 8, 0, 3, true).get(2).promptIds())
                .isEqualTo(Datasets.random(tokenizer.tokenizer(), 5, 64, 8, 0, 3, true).get(2).promptIds());
        BenchRequest text = Datasets.random(tokenizer.tokenizer(), 1, 64, 8, 0, 3, false).get(0);
        assertThat(text.promptIds()).isNull();
        assertThat(text.promptText()).isNotEmpty();
        assertThat(text.promptTokens()).isEqualTo(64);
    }

    @Test
    void prefixRepeatSharesKPrefixes() {
        List<BenchRequest> r = Datasets.prefixRepeat(tokenizer.tokenizer(), 12, 3, 40, 10, 5, 0, 9, true);
        for (int i = 0; i < 12; i++) {
            int[] ids = r.get(i).promptIds();
            assertThat(ids).hasSize(50);
            assertThat(Arrays.copyOf(ids, 40)).isEqualTo(Arrays.copyOf(r.get(i % 3).promptIds(), 40));
            if (i >= 3) {
                assertThat(Arrays.copyOfRange(ids, 40, 50)).isNotEqualTo(
                        Arrays.copyOfRange(r.get(i - 3).promptIds(), 40, 50));
            }
        }
        assertThat(Arrays.copyOf(r.get(0).promptIds(), 40)).isNotEqualTo(Arrays.copyOf(r.get(1).promptIds(), 40));
        BenchRequest chat = Datasets.prefixRepeat(tokenizer.tokenizer(), 2, 1, 40, 10, 5, 0, 9, false).get(1);
        assertThat(chat.systemText()).isNotEmpty();
        assertThat(chat.promptTokens()).isEqualTo(50);
    }

    @Test
    void shareGptTakesFirstExchangesAndSkipsWhatVllmSkips() throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<BenchRequest> r = Datasets.shareGpt(sample(), tokenizer.tokenizer(), 10, null, 0, json);
        // 7 conversations: one too short ("hi"), one of a single turn, one that starts with the assistant
        assertThat(r).hasSize(4);
        assertThat(r).extracting(BenchRequest::promptText).contains(
                "Write a haiku about a lighthouse in winter.",
                "What is the difference between a list and a tuple in Python?");
        BenchRequest haiku = r.stream().filter(q -> q.promptText().startsWith("Write a haiku")).findFirst()
                .orElseThrow();
        assertThat(haiku.outputTokens()).isEqualTo(tokenizer.tokenizer()
                .encode("Salt wind on the glass / the lamp turns its patient eye / ships pass in the dark").length);
        assertThat(Datasets.shareGpt(sample(), tokenizer.tokenizer(), 2, 16, 0, json))
                .hasSize(2).allSatisfy(q -> assertThat(q.outputTokens()).isEqualTo(16));
        Path notShareGpt = dir.resolve("x.json");
        Files.writeString(notShareGpt, "{\"conversations\": []}");
        assertThatThrownBy(() -> Datasets.shareGpt(notShareGpt, tokenizer.tokenizer(), 1, null, 0, json))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not ShareGPT JSON");
        Files.writeString(notShareGpt, "[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}]}]");
        assertThatThrownBy(() -> Datasets.shareGpt(notShareGpt, tokenizer.tokenizer(), 1, null, 0, json))
                .hasMessageContaining("no conversation with a usable first exchange");
    }
}
