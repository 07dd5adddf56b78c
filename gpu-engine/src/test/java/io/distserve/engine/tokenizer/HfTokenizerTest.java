package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading, special tokens, lifecycle and error paths, on the tiny WordLevel tokenizer (no ../shared needed). */
class HfTokenizerTest {

    @TempDir
    Path dir;

    @Test
    void loadsAFolderAndEncodesWithoutAddingSpecialTokens() {
        try (HfTokenizer tokenizer = HfTokenizer.load(TestTokenizers.tinyModelFolder(dir))) {
            // the tiny tokenizer's post-processor appends <eos> when special tokens are added
            assertThat(tokenizer.encode("hello world")).containsExactly(1, 2);
            assertThat(tokenizer.encode("hello<eos>")).containsExactly(1, 4);
            assertThat(tokenizer.encode("unknown")).containsExactly(0);
            assertThat(tokenizer.vocabSize()).isEqualTo(6);
            assertThat(tokenizer.specialTokenIds()).containsExactly(4);
            assertThat(tokenizer.tokenId("<tool>")).isEqualTo(5);
            assertThat(tokenizer.tokenId("world")).isEqualTo(2);
        }
    }

    @Test
    void tokenizerConfigAddsSpecialTokens() throws IOException {
        TestTokenizers.tinyModelFolder(dir);
        Files.writeString(dir.resolve("tokenizer_config.json"),
                "{\"added_tokens_decoder\": {\"5\": {\"content\": \"<tool>\", \"special\": true}}}");
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            assertThat(tokenizer.specialTokenIds()).containsExactlyInAnyOrder(4, 5);
            assertThat(tokenizer.decode(new int[] {1, 5, 2, 4}, true)).isEqualTo("hello world");
            assertThat(tokenizer.decode(new int[] {1, 5, 2, 4}, false)).contains("<tool>").contains("<eos>");
        }
    }

    @Test
    void closedTokenizerRefusesWorkAndClosesOnce() {
        HfTokenizer tokenizer = HfTokenizer.load(TestTokenizers.tinyModelFolder(dir));
        tokenizer.close();
        tokenizer.close();
        assertThatThrownBy(() -> tokenizer.encode("hello"))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("closed");
        assertThatThrownBy(() -> tokenizer.decode(new int[] {1}, false)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void missingTokenizerJsonNamesTheFile() {
        assertThatThrownBy(() -> HfTokenizer.load(dir))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining(dir.resolve("tokenizer.json").toString())
                .hasMessageContaining("not found");
    }

    @Test
    void corruptTokenizerJsonNamesTheFile() throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {\"vocab\": {\"a\": 0,");
        assertThatThrownBy(() -> HfTokenizer.load(dir))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining(dir.resolve("tokenizer.json").toString())
                .hasMessageContaining("not valid JSON");
    }

    @Test
    void tokenizerJsonWithoutModelNamesTheField() throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"), "{\"added_tokens\": []}");
        assertThatThrownBy(() -> HfTokenizer.load(dir))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining("tokenizer.json")
                .hasMessageContaining("'model'");
    }

    @Test
    void tokenizerJsonTheNativeLibraryRejectsNamesTheFile() throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"),
                "{\"model\": {\"type\": \"NoSuchModel\", \"vocab\": {\"a\": 0}}}");
        assertThatThrownBy(() -> HfTokenizer.load(dir))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining(dir.resolve("tokenizer.json").toString());
    }
}
