package io.distserve.engine.tokenizer;

import io.distserve.engine.tokenizer.jinja.HfJinjaEnvironment;
import io.distserve.engine.tokenizer.jinja.JinjaTemplateException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A model's Jinja chat template, rendered as Hugging Face transformers'
 * {@code apply_chat_template(messages, tokenize=False, add_generation_prompt=...)} renders it: the template sees
 * {@code messages} (a list of {role, content} dicts), {@code add_generation_prompt}, the special tokens the model
 * sets ({@code bos_token}, {@code eos_token}, {@code unk_token}, {@code pad_token}), {@code tools} and
 * {@code documents} (none), then the request's extra keyword arguments (e.g. {@code enable_thinking}), which
 * override the rest, as in transformers. See {@link HfJinjaEnvironment} for how Jinjava is made to behave like
 * Jinja2 here. Thread-safe.
 */
public final class ChatTemplate {

    private final String source;
    private final Map<String, Object> specialTokens;
    private final HfJinjaEnvironment environment;

    /**
     * @param source        the template text
     * @param specialTokens template variables for the special tokens, e.g. {@link TokenizerConfig#specialTokenVariables()}
     * @throws ChatTemplateException when the template's tags do not parse
     */
    public ChatTemplate(String source, Map<String, Object> specialTokens) {
        this.source = source;
        this.specialTokens = Map.copyOf(specialTokens);
        this.environment = new HfJinjaEnvironment();
        try {
            environment.checkSyntax(source);
        } catch (JinjaTemplateException e) {
            throw new ChatTemplateException(e.getMessage(), e);
        }
    }

    /**
     * Renders the conversation to the prompt text.
     *
     * @param extraVariables more template variables (chat_template_kwargs such as {@code enable_thinking=false})
     * @throws ChatTemplateException when a message lacks a role or content, or the template fails or rejects the
     *                               conversation (the message then carries the template's own words)
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, Object> extraVariables) {
        Map<String, Object> variables = new HashMap<>(specialTokens);
        variables.put("messages", asDicts(messages));
        variables.put("add_generation_prompt", addGenerationPrompt);
        variables.put("tools", null);
        variables.put("documents", null);
        variables.putAll(extraVariables);
        try {
            return environment.render(source, variables);
        } catch (JinjaTemplateException e) {
            throw new ChatTemplateException(e.getMessage(), e);
        }
    }

    /** The template text. */
    public String source() {
        return source;
    }

    private static List<Map<String, Object>> asDicts(List<ChatMessage> messages) {
        List<Map<String, Object>> dicts = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) {
            ChatMessage message = messages.get(i);
            if (message == null || message.role() == null || message.content() == null) {
                throw new ChatTemplateException("message " + i + " needs a role and a content");
            }
            Map<String, Object> dict = new LinkedHashMap<>();
            dict.put("role", message.role());
            dict.put("content", message.content());
            dicts.add(Collections.unmodifiableMap(dict));
        }
        // unmodifiable, like Jinja2's ImmutableSandboxedEnvironment: messages.append(...) in a template fails
        return Collections.unmodifiableList(dicts);
    }
}
