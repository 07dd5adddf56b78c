package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Qwen3 chat template rendered by {@link ChatTemplate} must equal, character for character, what Hugging
 * Face renders; the expected strings come from gpu-engine/scripts/chat_template_reference.py.
 */
class ChatTemplateReferenceTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String CASES = "/tokenizer/qwen3_chat_template_cases.json";

    static Stream<Arguments> cases() throws IOException {
        List<Arguments> cases = new ArrayList<>();
        for (JsonNode c : referenceDocument().get("cases")) {
            cases.add(Arguments.of(c.get("name").asText(), c));
        }
        return cases.stream();
    }

    private static JsonNode referenceDocument() throws IOException {
        try (InputStream in = ChatTemplateReferenceTest.class.getResourceAsStream(CASES)) {
            if (in == null) {
                throw new IllegalStateException("test resource " + CASES + " is missing");
            }
            return JSON.readTree(in);
        }
    }

    @Test
    void referenceCoversTheRequiredSituations() throws IOException {
        List<String> names = new ArrayList<>();
        referenceDocument().get("cases").forEach(c -> names.add(c.get("name").asText()));
        assertThat(names).contains("single_user", "system_user", "multi_turn", "single_user_no_generation_prompt",
                "enable_thinking_false", "assistant_think_in_history", "unicode", "newlines_and_jinja_looking_text");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void rendersLikeHuggingFace(String name, JsonNode c) {
        Path folder = TestTokenizers.qwen3Folder();
        TokenizerConfig config = TokenizerConfig.read(folder.resolve(TokenizerConfig.FILE_NAME));
        ChatTemplate template = new ChatTemplate(config.chatTemplate().orElseThrow(), config.specialTokenVariables());
        List<ChatMessage> messages = new ArrayList<>();
        for (JsonNode m : c.get("messages")) {
            messages.add(new ChatMessage(m.get("role").asText(), m.get("content").asText()));
        }
        Map<String, Object> kwargs = JSON.convertValue(c.get("kwargs"), new TypeReference<Map<String, Object>>() { });

        String rendered = template.render(messages, c.get("add_generation_prompt").asBoolean(), kwargs);

        assertThat(rendered).isEqualTo(c.get("expected").asText());
    }
}
