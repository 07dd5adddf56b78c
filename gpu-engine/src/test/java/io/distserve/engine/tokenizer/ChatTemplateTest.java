package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** ChatTemplate's contract with small templates: variables, failures, and what must never be evaluated. */
class ChatTemplateTest {

    private static final List<ChatMessage> HELLO = List.of(new ChatMessage("user", "Hello"));

    private static ChatTemplate template(String source) {
        return new ChatTemplate(source, Map.of("eos_token", "</s>", "bos_token", "<s>"));
    }

    @Test
    void seesMessagesGenerationPromptSpecialTokensAndExtraKwargs() {
        ChatTemplate template = template(
                "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
                + "{% if add_generation_prompt %}>{% endif %}{{ eos_token }}"
                + "{% if enable_thinking is defined and enable_thinking is false %}!{% endif %}");
        assertThat(template.render(HELLO, true, Map.of())).isEqualTo("<s>[user:Hello]></s>");
        assertThat(template.render(HELLO, false, Map.of("enable_thinking", false))).isEqualTo("<s>[user:Hello]</s>!");
        // extra kwargs win over the special tokens, as in transformers' {**special_tokens_map, **kwargs}
        assertThat(template.render(HELLO, false, Map.of("eos_token", "<end>"))).endsWith("<end>");
    }

    @Test
    void raiseExceptionRejectsTheConversationWithTheTemplatesMessage() {
        ChatTemplate template = template(
                "{% for m in messages %}{% if m.role == 'system' and not loop.first %}"
                + "{{ raise_exception('System message must be at the beginning.') }}{% endif %}{% endfor %}ok");
        assertThat(template.render(HELLO, false, Map.of())).isEqualTo("ok");
        List<ChatMessage> late = List.of(new ChatMessage("user", "a"), new ChatMessage("system", "b"));
        assertThatThrownBy(() -> template.render(late, false, Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessage("chat template raised an error: System message must be at the beginning.");
    }

    @Test
    void malformedTemplateFailsWhenCreated() {
        assertThatThrownBy(() -> template("{% for m in messages %}{{ m.content }}"))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("endfor");
    }

    @Test
    void badExpressionFailsWhenRendered() {
        ChatTemplate template = template("{{ messages[0].content + }}");
        assertThatThrownBy(() -> template.render(HELLO, false, Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("cannot render chat template");
    }

    @Test
    void unknownFunctionFailsInsteadOfRenderingPartialText() {
        ChatTemplate template = template("a{{ no_such_function(1) }}b");
        assertThatThrownBy(() -> template.render(HELLO, false, Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("no_such_function");
    }

    @Test
    void templateSyntaxInsideMessagesIsText() {
        ChatTemplate template = template("{{ messages[0].content }}");
        String content = "{{ 7 * 7 }} {% if true %}x{% endif %} {# c #} {{ raise_exception('no') }}";
        assertThat(template.render(List.of(new ChatMessage("user", content)), false, Map.of())).isEqualTo(content);
    }

    @Test
    void messagesNeedRoleAndContent() {
        ChatTemplate template = template("{{ messages|length }}");
        assertThatThrownBy(() -> template.render(Arrays.asList(new ChatMessage("user", null)), false, Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("message 0");
    }

    @Test
    void templatesCannotModifyTheConversation() {
        // Jinja2's ImmutableSandboxedEnvironment forbids list.append; the conversation is passed unmodifiable
        ChatTemplate template = template("{% set _ = messages.append(messages[0]) %}{{ messages|length }}");
        assertThatThrownBy(() -> template.render(HELLO, false, Map.of())).isInstanceOf(ChatTemplateException.class);
    }
}
