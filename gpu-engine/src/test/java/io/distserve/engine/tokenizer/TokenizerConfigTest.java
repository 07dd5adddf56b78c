package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerConfigTest {

    @TempDir
    Path dir;

    private TokenizerConfig read(String json) throws IOException {
        Path file = dir.resolve("tokenizer_config.json");
        Files.writeString(file, json);
        return TokenizerConfig.read(file);
    }

    @Test
    void readsQwen3Config() {
        TokenizerConfig config = TokenizerConfig.read(TestTokenizers.qwen3Folder().resolve("tokenizer_config.json"));
        assertThat(config.chatTemplate()).get().asString().contains("<|im_start|>").contains("enable_thinking");
        assertThat(config.eosToken()).isEqualTo("<|im_end|>");
        assertThat(config.padToken()).isEqualTo("<|endoftext|>");
        assertThat(config.bosToken()).isNull();
        assertThat(config.addBosToken()).isFalse();
        assertThat(config.modelMaxLength()).isEqualTo(OptionalLong.of(131072));
        assertThat(config.specialAddedTokens()).containsEntry(151645, "<|im_end|>").doesNotContainKey(151667);
        assertThat(config.specialTokenVariables())
                .containsExactly(Map.entry("eos_token", "<|im_end|>"), Map.entry("pad_token", "<|endoftext|>"));
    }

    @Test
    void tokensMayBeObjectsWithContent() throws IOException {
        TokenizerConfig config = read("{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
                + " \"unk_token\": null, \"add_bos_token\": true, \"model_max_length\": 1000000000000000019884624838656}");
        assertThat(config.bosToken()).isEqualTo("<s>");
        assertThat(config.eosToken()).isEqualTo("</s>");
        assertThat(config.unkToken()).isNull();
        assertThat(config.addBosToken()).isTrue();
        assertThat(config.modelMaxLength()).isEmpty(); // HF's "unlimited"
        assertThat(config.chatTemplate()).isEmpty();
    }

    @Test
    void namedTemplatesPickDefault() throws IOException {
        TokenizerConfig config = read("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
                + " {\"name\": \"default\", \"template\": \"D\"}]}");
        assertThat(config.chatTemplate()).contains("D");
    }

    @Test
    void namedTemplatesWithoutDefaultAreRejected() {
        assertThatThrownBy(() -> read("{\"chat_template\": [{\"name\": \"rag\", \"template\": \"R\"}]}"))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining("tokenizer_config.json")
                .hasMessageContaining("'chat_template'")
                .hasMessageContaining("default");
    }

    @Test
    void badFieldsNameFileAndField() {
        assertThatThrownBy(() -> read("{\"eos_token\": 7}"))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining(dir.resolve("tokenizer_config.json").toString())
                .hasMessageContaining("'eos_token'");
        assertThatThrownBy(() -> read("{\"chat_template\": 3}")).hasMessageContaining("'chat_template'");
        assertThatThrownBy(() -> read("{\"add_bos_token\": \"yes\"}")).hasMessageContaining("'add_bos_token'");
        assertThatThrownBy(() -> read("{\"model_max_length\": \"long\"}")).hasMessageContaining("'model_max_length'");
        assertThatThrownBy(() -> read("{\"added_tokens_decoder\": {\"x\": {\"content\": \"a\"}}}"))
                .hasMessageContaining("added_tokens_decoder.x");
        assertThatThrownBy(() -> read("{\"eos_token\": ")).hasMessageContaining("not valid JSON");
        assertThatThrownBy(() -> read("[]")).hasMessageContaining("JSON object");
    }

    @Test
    void missingFileIsNamed() {
        Path file = dir.resolve("tokenizer_config.json");
        assertThatThrownBy(() -> TokenizerConfig.read(file))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining(file.toString());
    }
}
