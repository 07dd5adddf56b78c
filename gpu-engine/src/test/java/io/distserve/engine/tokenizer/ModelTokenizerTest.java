package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelTokenizerTest {

    @TempDir
    Path dir;

    @Test
    void qwen3EncodesChatsAndPrompts() {
        try (ModelTokenizer model = ModelTokenizer.load(TestTokenizers.qwen3Folder())) {
            List<ChatMessage> chat = List.of(new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi!"));
            String prompt = model.renderChat(chat, true, Map.of("enable_thinking", false));
            assertThat(prompt).isEqualTo("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                    + "<|im_start|>assistant\n<think>\n\n</think>\n\n");
            int[] ids = model.encodeChat(chat, true, Map.of("enable_thinking", false));
            assertThat(ids).isEqualTo(model.encodePrompt(prompt));
            assertThat(ids[0]).isEqualTo(151644);
            assertThat(model.tokenizer().decode(ids, false)).isEqualTo(prompt);
            assertThat(model.eosTokenIds()).containsExactly(151645);
            assertThat(model.hasChatTemplate()).isTrue();
        }
    }

    @Test
    void modelWithoutChatTemplatePointsToCompletions() {
        try (ModelTokenizer model = ModelTokenizer.load(TestTokenizers.tinyModelFolder(dir))) {
            assertThat(model.hasChatTemplate()).isFalse();
            assertThat(model.encodePrompt("hello world")).containsExactly(1, 2);
            assertThat(model.eosTokenIds()).isEmpty();
            assertThatThrownBy(() -> model.encodeChat(List.of(new ChatMessage("user", "hello")), true, Map.of()))
                    .isInstanceOf(ChatTemplateException.class)
                    .hasMessage("this model has no chat template; use /v1/completions");
        }
    }

    @Test
    void eosIdsJoinTokenizerConfigAndGenerationConfig() throws IOException {
        TestTokenizers.tinyModelFolder(dir);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": \"<eos>\"}");
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": [4, 5]}");
        try (ModelTokenizer model = ModelTokenizer.load(dir)) {
            assertThat(model.eosTokenIds()).containsExactlyInAnyOrder(4, 5);
        }
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": 3}");
        try (ModelTokenizer model = ModelTokenizer.load(dir)) {
            assertThat(model.eosTokenIds()).containsExactlyInAnyOrder(3, 4);
        }
    }

    @Test
    void badEosDeclarationsNameTheFile() throws IOException {
        TestTokenizers.tinyModelFolder(dir);
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": [4, 99]}");
        assertThatThrownBy(() -> ModelTokenizer.load(dir))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining("generation_config.json")
                .hasMessageContaining("'eos_token_id'");
        Files.delete(dir.resolve("generation_config.json"));
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": \"<nope>\"}");
        assertThatThrownBy(() -> ModelTokenizer.load(dir))
                .isInstanceOf(InvalidTokenizerFileException.class)
                .hasMessageContaining("tokenizer_config.json")
                .hasMessageContaining("'eos_token'");
    }

    @Test
    void chatTemplateJinjaFileIsTheFallback() throws IOException {
        TestTokenizers.tinyModelFolder(dir);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": \"<eos>\"}");
        Files.writeString(dir.resolve("chat_template.jinja"),
                "{% for m in messages %}{{ m.role }}: {{ m.content }} {% endfor %}{{ eos_token }}");
        try (ModelTokenizer model = ModelTokenizer.load(dir)) {
            assertThat(model.encodeChat(List.of(new ChatMessage("user", "hello world")), false, Map.of()))
                    .containsExactly(3, 1, 2, 4);
        }
    }

    @Test
    void malformedChatTemplateFailsTheLoad() throws IOException {
        TestTokenizers.tinyModelFolder(dir);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"chat_template\": \"{% if x %}never closed\"}");
        assertThatThrownBy(() -> ModelTokenizer.load(dir))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("endif");
    }
}
