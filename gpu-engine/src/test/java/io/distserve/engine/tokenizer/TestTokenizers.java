package io.distserve.engine.tokenizer;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** Where tests find tokenizers: the real Qwen3 one in ../shared, and a tiny one in the test resources. */
final class TestTokenizers {

    private TestTokenizers() {
    }

    /** ../shared/models/qwen3-tokenizer; skips the calling test when the folder is absent. */
    static Path qwen3Folder() {
        String shared = System.getProperty("distserve.shared.dir");
        Path folder = shared == null ? null : Path.of(shared, "models", "qwen3-tokenizer");
        assumeTrue(folder != null && Files.isRegularFile(folder.resolve("tokenizer.json")),
                "needs ../shared/models/qwen3-tokenizer");
        return folder;
    }

    /** Copies the tiny WordLevel tokenizer.json into {@code dir} and returns {@code dir}. */
    static Path tinyModelFolder(Path dir) {
        try (InputStream in = TestTokenizers.class.getResourceAsStream("/tokenizer/tiny-wordlevel/tokenizer.json")) {
            if (in == null) {
                throw new IllegalStateException("test resource tokenizer/tiny-wordlevel/tokenizer.json is missing");
            }
            Files.copy(in, dir.resolve(HfTokenizer.FILE_NAME), StandardCopyOption.REPLACE_EXISTING);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
