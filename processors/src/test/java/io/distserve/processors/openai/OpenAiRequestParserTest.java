package io.distserve.processors.openai;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class OpenAiRequestParserTest {

    private final OpenAiRequestParser parser = new OpenAiRequestParser(new ObjectMapper());

    private InferenceRequest completion(String json) {
        return parser.parse(RequestKind.COMPLETION, json.getBytes(StandardCharsets.UTF_8));
    }

    private InferenceRequest chat(String json) {
        return parser.parse(RequestKind.CHAT, json.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void parsesTheDesignDocExample() {
        InferenceRequest r = completion("{\"model\":\"Qwen3-8B\",\"temperature\":0,"
                + "\"prompt\":\"Shanghai is a city that \",\"max_tokens\":16,\"stream\":false}");
        assertThat(r.kind()).isEqualTo(RequestKind.COMPLETION);
        assertThat(r.model()).isEqualTo("Qwen3-8B");
        assertThat(r.promptText()).isEqualTo("Shanghai is a city that ");
        assertThat(r.promptTokenIds()).isNull();
        assertThat(r.sampling().isGreedy()).isTrue();
        assertThat(r.sampling().maxTokens()).isEqualTo(16);
        assertThat(r.maxTokensGiven()).isTrue();
        assertThat(r.stream()).isFalse();
    }

    @Test
    void honoursEverySamplingField() {
        InferenceRequest r = completion("{\"prompt\":[1,2,3],\"max_completion_tokens\":5,\"temperature\":0.7,"
                + "\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"repetition_penalty\":1.1,\"seed\":42,"
                + "\"stop\":[\"\\n\\n\",\"END\"],\"stop_token_ids\":[7],\"ignore_eos\":true,"
                + "\"skip_special_tokens\":false,\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1}");
        assertThat(r.promptTokenIds()).containsExactly(1, 2, 3);
        assertThat(r.sampling().maxTokens()).isEqualTo(5);
        assertThat(r.sampling().temperature()).isEqualTo(0.7);
        assertThat(r.sampling().topP()).isEqualTo(0.9);
        assertThat(r.sampling().topK()).isEqualTo(40);
        assertThat(r.sampling().minP()).isEqualTo(0.05);
        assertThat(r.sampling().repetitionPenalty()).isEqualTo(1.1);
        assertThat(r.sampling().seed()).isEqualTo(42L);
        assertThat(r.sampling().stop()).containsExactly("\n\n", "END");
        assertThat(r.sampling().stopTokenIds()).containsExactly(7);
        assertThat(r.sampling().ignoreEos()).isTrue();
        assertThat(r.sampling().skipSpecialTokens()).isFalse();
        assertThat(r.stream()).isTrue();
        assertThat(r.includeUsage()).isTrue();
    }

    @Test
    void defaultsFollowOpenAi() {
        InferenceRequest c = completion("{\"prompt\":\"hi\"}");
        assertThat(c.sampling().maxTokens()).isEqualTo(OpenAiRequestParser.DEFAULT_COMPLETION_MAX_TOKENS);
        assertThat(c.maxTokensGiven()).isFalse();
        assertThat(c.sampling().temperature()).isEqualTo(1.0);
        InferenceRequest ch = chat("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        assertThat(ch.sampling().maxTokens()).isEqualTo(OpenAiRequestParser.UNTIL_CONTEXT_END);
    }

    @Test
    void chatContentPartsAreJoined() {
        InferenceRequest r = chat("{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                + "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],"
                + "\"chat_template_kwargs\":{\"enable_thinking\":false}}");
        assertThat(r.messages()).extracting(m -> m.role() + ":" + m.content()).containsExactly("system:be brief", "user:ab");
        assertThat(r.chatTemplateKwargs()).containsEntry("enable_thinking", false);
    }

    @Test
    void aSingletonPromptListIsUnwrapped() {
        assertThat(completion("{\"prompt\":[\"hello\"]}").promptText()).isEqualTo("hello");
        assertThat(completion("{\"prompt\":[[5,6]]}").promptTokenIds()).containsExactly(5, 6);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "not json                | {\"prompt\": | ",
        "not an object           | [1,2] | ",
        "missing prompt          | {\"max_tokens\":3} | prompt",
        "empty prompt            | {\"prompt\":\"\"} | prompt",
        "empty id list           | {\"prompt\":[]} | prompt",
        "prompt wrong type       | {\"prompt\":42} | prompt",
        "negative token id       | {\"prompt\":[1,-2]} | prompt",
        "fractional token id     | {\"prompt\":[1.5]} | prompt",
        "batched prompts         | {\"prompt\":[\"a\",\"b\"]} | prompt",
        "messages on completions | {\"prompt\":\"a\",\"messages\":[]} | messages",
        "model wrong type        | {\"prompt\":\"a\",\"model\":3} | model",
        "max_tokens zero         | {\"prompt\":\"a\",\"max_tokens\":0} | max_tokens",
        "max_tokens string       | {\"prompt\":\"a\",\"max_tokens\":\"5\"} | max_tokens",
        "max_tokens disagree     | {\"prompt\":\"a\",\"max_tokens\":5,\"max_completion_tokens\":6} | max_completion_tokens",
        "negative temperature    | {\"prompt\":\"a\",\"temperature\":-0.1} | temperature",
        "temperature string      | {\"prompt\":\"a\",\"temperature\":\"hot\"} | temperature",
        "top_p zero              | {\"prompt\":\"a\",\"top_p\":0} | top_p",
        "top_p above one         | {\"prompt\":\"a\",\"top_p\":1.5} | top_p",
        "top_k below -1          | {\"prompt\":\"a\",\"top_k\":-2} | top_k",
        "min_p above one         | {\"prompt\":\"a\",\"min_p\":2} | min_p",
        "repetition penalty 0    | {\"prompt\":\"a\",\"repetition_penalty\":0} | repetition_penalty",
        "n two                   | {\"prompt\":\"a\",\"n\":2} | n",
        "stream not boolean      | {\"prompt\":\"a\",\"stream\":\"yes\"} | stream",
        "stream_options no stream| {\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}} | stream_options",
        "stop wrong type         | {\"prompt\":\"a\",\"stop\":[1]} | stop",
        "logprobs                | {\"prompt\":\"a\",\"logprobs\":3} | logprobs",
        "echo                    | {\"prompt\":\"a\",\"echo\":true} | echo",
        "presence penalty        | {\"prompt\":\"a\",\"presence_penalty\":0.5} | presence_penalty",
        "seed not integer        | {\"prompt\":\"a\",\"seed\":1.5} | seed",
    })
    void rejectsBadCompletions(String name, String body, String param) {
        assertThatThrownBy(() -> completion(body))
                .isInstanceOfSatisfying(OpenAiException.class, e -> {
                    assertThat(e.status()).isEqualTo(400);
                    assertThat(e.type()).isEqualTo("invalid_request_error");
                    assertThat(e.param()).isEqualTo(param);
                    assertThat(e.getMessage()).isNotBlank();
                });
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "missing messages     | {\"model\":\"m\"} | messages",
        "empty messages       | {\"messages\":[]} | messages",
        "message not object   | {\"messages\":[\"hi\"]} | messages[0]",
        "unknown role         | {\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]} | messages[0].role",
        "content wrong type   | {\"messages\":[{\"role\":\"user\",\"content\":5}]} | messages[0].content",
        "image part           | {\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]} | messages[0].content",
        "prompt on chat       | {\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"prompt\":\"a\"} | prompt",
        "tools                | {\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{}]} | tools",
        "bad template kwargs  | {\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"chat_template_kwargs\":[1]} | chat_template_kwargs",
    })
    void rejectsBadChats(String name, String body, String param) {
        assertThatThrownBy(() -> chat(body))
                .isInstanceOfSatisfying(OpenAiException.class, e -> {
                    assertThat(e.status()).isEqualTo(400);
                    assertThat(e.param()).isEqualTo(param);
                });
    }
}
