package io.distserve.processors.openai;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.tokenizer.ChatMessage;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Parses and validates an OpenAI completions or chat request body. Every problem is an
 * {@link OpenAiException} with status 400 naming the offending field; nothing else happens to a bad request.
 *
 * <p>Fields we honour: model, prompt (a string, a list of token ids, or a one-element list of either), messages,
 * max_tokens / max_completion_tokens, temperature, top_p, top_k, min_p, repetition_penalty, seed, stop, stream,
 * stream_options.include_usage, n (only 1), ignore_eos, skip_special_tokens, chat_template_kwargs. Fields whose
 * silent omission would change the answer the client expects (logprobs, echo, best_of, suffix, tools, non-zero
 * presence/frequency penalties, response_format other than text) are rejected; anything else is accepted and
 * ignored, as OpenAI-compatible servers do.
 */
public final class OpenAiRequestParser {

    /** max_tokens when a completions client gives none (OpenAI's and LMDeploy's default). */
    public static final int DEFAULT_COMPLETION_MAX_TOKENS = 16;

    /** max_tokens when a chat client gives none: "as many as the context allows", resolved by the engine. */
    public static final int UNTIL_CONTEXT_END = Integer.MAX_VALUE;

    private static final Set<String> CHAT_ROLES = Set.of("system", "developer", "user", "assistant", "tool");

    private final ObjectMapper json;

    public OpenAiRequestParser(ObjectMapper json) {
        this.json = json;
    }

    public InferenceRequest parse(RequestKind kind, byte[] body) {
        if (body.length == 0) {
            throw OpenAiException.badRequest(null,
                    "The request body is empty: send a JSON object with 'Content-Type: application/json'.");
        }
        JsonNode root;
        try {
            root = json.readTree(body);
        } catch (JsonProcessingException e) {
            throw OpenAiException.badRequest(null, "Invalid JSON in request body: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw OpenAiException.badRequest(null, "Unreadable request body: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw OpenAiException.badRequest(null, "The request body must be a JSON object.");
        }
        return parse(kind, (ObjectNode) root);
    }

    public InferenceRequest parse(RequestKind kind, ObjectNode root) {
        Fields f = new Fields(root);
        String model = f.optString("model");

        String promptText = null;
        int[] promptIds = null;
        List<ChatMessage> messages = List.of();
        if (kind == RequestKind.COMPLETION) {
            if (root.has("messages")) {
                throw OpenAiException.badRequest("messages", "'messages' belongs to /v1/chat/completions; "
                        + "/v1/completions takes 'prompt'.");
            }
            JsonNode prompt = unwrapSingleton(f.required("prompt"));
            if (prompt.isTextual()) {
                promptText = prompt.asText();
                if (promptText.isEmpty()) {
                    throw OpenAiException.badRequest("prompt", "'prompt' must not be empty.");
                }
            } else if (prompt.isArray()) {
                promptIds = tokenIds(prompt);
            } else {
                throw OpenAiException.badRequest("prompt",
                        "'prompt' must be a string or a list of token ids.");
            }
        } else {
            if (root.has("prompt")) {
                throw OpenAiException.badRequest("prompt", "'prompt' belongs to /v1/completions; "
                        + "/v1/chat/completions takes 'messages'.");
            }
            messages = messages(f.required("messages"));
        }

        Integer maxTokens = f.optInt("max_tokens");
        Integer maxCompletion = f.optInt("max_completion_tokens");
        if (maxTokens != null && maxCompletion != null && !maxTokens.equals(maxCompletion)) {
            throw OpenAiException.badRequest("max_completion_tokens",
                    "'max_tokens' and 'max_completion_tokens' disagree; give one of them.");
        }
        Integer max = maxCompletion != null ? maxCompletion : maxTokens;
        if (max != null && max < 1) {
            throw OpenAiException.badRequest(maxCompletion != null ? "max_completion_tokens" : "max_tokens",
                    "max_tokens must be at least 1, got " + max + ".");
        }

        double temperature = f.optDouble("temperature", 1.0);
        if (temperature < 0) {
            throw OpenAiException.badRequest("temperature", "temperature must be >= 0, got " + temperature + ".");
        }
        double topP = f.optDouble("top_p", 1.0);
        if (!(topP > 0 && topP <= 1)) {
            throw OpenAiException.badRequest("top_p", "top_p must be in (0, 1], got " + topP + ".");
        }
        Integer topK = f.optInt("top_k");
        if (topK != null && topK < -1) {
            throw OpenAiException.badRequest("top_k", "top_k must be -1 (off), 0 (off) or positive, got " + topK + ".");
        }
        double minP = f.optDouble("min_p", 0.0);
        if (minP < 0 || minP > 1) {
            throw OpenAiException.badRequest("min_p", "min_p must be in [0, 1], got " + minP + ".");
        }
        double repetitionPenalty = f.optDouble("repetition_penalty", 1.0);
        if (!(repetitionPenalty > 0)) {
            throw OpenAiException.badRequest("repetition_penalty",
                    "repetition_penalty must be > 0, got " + repetitionPenalty + ".");
        }
        Long seed = f.optLong("seed");
        Integer n = f.optInt("n");
        if (n != null && n != 1) {
            throw OpenAiException.badRequest("n", "Only n = 1 is supported, got " + n + ".");
        }
        boolean stream = f.optBoolean("stream", false);
        boolean includeUsage = false;
        JsonNode streamOptions = root.get("stream_options");
        if (streamOptions != null && !streamOptions.isNull()) {
            if (!streamOptions.isObject()) {
                throw OpenAiException.badRequest("stream_options", "'stream_options' must be an object.");
            }
            if (!stream) {
                throw OpenAiException.badRequest("stream_options", "'stream_options' is only allowed with stream=true.");
            }
            includeUsage = new Fields((ObjectNode) streamOptions, "stream_options.").optBoolean("include_usage", false);
        }
        List<String> stop = stopStrings(root.get("stop"));
        List<Integer> stopIds = new ArrayList<>();
        JsonNode stopTokenIds = root.get("stop_token_ids");
        if (stopTokenIds != null && !stopTokenIds.isNull()) {
            for (int id : tokenIds(stopTokenIds, "stop_token_ids")) {
                stopIds.add(id);
            }
        }
        boolean ignoreEos = f.optBoolean("ignore_eos", false);
        boolean skipSpecial = f.optBoolean("skip_special_tokens", true);
        f.optBoolean("return_token_ids", false); // type-checked here; read by the response
        JsonNode resume = root.get("resume_token_ids");
        if (resume != null && !resume.isNull()) {
            int[] ids = tokenIds(resume, "resume_token_ids");
            if (max != null && ids.length >= max) {
                throw OpenAiException.badRequest("resume_token_ids", "resume_token_ids (" + ids.length
                        + " tokens) leave nothing of max_tokens (" + max + ") to generate.");
            }
        }
        Map<String, Object> templateKwargs = chatTemplateKwargs(root.get("chat_template_kwargs"));
        rejectUnsupported(f, kind);

        int resolvedMax = max != null ? max
                : kind == RequestKind.COMPLETION ? DEFAULT_COMPLETION_MAX_TOKENS : UNTIL_CONTEXT_END;
        SamplingParams sampling = new SamplingParams(temperature, topP, topK == null ? 0 : Math.max(topK, 0), minP,
                repetitionPenalty, seed, resolvedMax, stop, stopIds, ignoreEos, skipSpecial);
        return new InferenceRequest(kind, model, promptText, promptIds, messages, sampling, max != null, stream,
                includeUsage, templateKwargs, root);
    }

    private static void rejectUnsupported(Fields f, RequestKind kind) {
        JsonNode root = f.root;
        if (root.hasNonNull("logprobs") && !(root.get("logprobs").isBoolean() && !root.get("logprobs").asBoolean())) {
            throw OpenAiException.badRequest("logprobs", "logprobs are not supported.");
        }
        if (root.hasNonNull("top_logprobs")) {
            throw OpenAiException.badRequest("top_logprobs", "logprobs are not supported.");
        }
        if (f.optBoolean("echo", false)) {
            throw OpenAiException.badRequest("echo", "echo is not supported.");
        }
        Integer bestOf = f.optInt("best_of");
        if (bestOf != null && bestOf != 1) {
            throw OpenAiException.badRequest("best_of", "Only best_of = 1 is supported.");
        }
        if (root.hasNonNull("suffix")) {
            throw OpenAiException.badRequest("suffix", "suffix is not supported.");
        }
        if (kind == RequestKind.CHAT && root.hasNonNull("tools") && root.get("tools").size() > 0) {
            throw OpenAiException.badRequest("tools", "tool calling is not supported.");
        }
        for (String penalty : List.of("presence_penalty", "frequency_penalty")) {
            if (f.optDouble(penalty, 0.0) != 0.0) {
                throw OpenAiException.badRequest(penalty, penalty + " is not supported; use repetition_penalty.");
            }
        }
        JsonNode format = root.get("response_format");
        if (format != null && !format.isNull()) {
            if (!format.isObject() || !"text".equals(format.path("type").asText())) {
                throw OpenAiException.badRequest("response_format", "Only response_format {\"type\": \"text\"} is supported.");
            }
        }
    }

    private static JsonNode unwrapSingleton(JsonNode prompt) {
        if (prompt.isArray() && prompt.size() == 1 && (prompt.get(0).isTextual() || prompt.get(0).isArray())) {
            return prompt.get(0);
        }
        if (prompt.isArray() && prompt.size() > 1 && (prompt.get(0).isTextual() || prompt.get(0).isArray())) {
            throw OpenAiException.badRequest("prompt", "Batched prompts are not supported: send one prompt per request.");
        }
        return prompt;
    }

    private static int[] tokenIds(JsonNode array) {
        return tokenIds(array, "prompt");
    }

    private static int[] tokenIds(JsonNode array, String param) {
        if (!array.isArray()) {
            throw OpenAiException.badRequest(param, "'" + param + "' must be a list of token ids.");
        }
        if (array.isEmpty() && "prompt".equals(param)) {
            throw OpenAiException.badRequest(param, "'prompt' must not be empty.");
        }
        int[] ids = new int[array.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode id = array.get(i);
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.asInt() < 0) {
                throw OpenAiException.badRequest(param, "'" + param + "' must be a list of non-negative integer "
                        + "token ids; element " + i + " is " + id + ".");
            }
            ids[i] = id.asInt();
        }
        return ids;
    }

    private static List<ChatMessage> messages(JsonNode node) {
        if (!node.isArray() || node.isEmpty()) {
            throw OpenAiException.badRequest("messages", "'messages' must be a non-empty list of messages.");
        }
        List<ChatMessage> out = new ArrayList<>(node.size());
        for (int i = 0; i < node.size(); i++) {
            JsonNode m = node.get(i);
            String where = "messages[" + i + "]";
            if (!m.isObject()) {
                throw OpenAiException.badRequest(where, where + " must be an object with 'role' and 'content'.");
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual() || !CHAT_ROLES.contains(role.asText())) {
                throw OpenAiException.badRequest(where + ".role",
                        where + ".role must be one of " + new java.util.TreeSet<>(CHAT_ROLES) + ".");
            }
            out.add(new ChatMessage(role.asText(), content(m.get("content"), where + ".content")));
        }
        return out;
    }

    /** Message content: a string, or a list of {"type":"text","text":...} parts (joined), or null (empty). */
    private static String content(JsonNode content, String where) {
        if (content == null || content.isNull()) {
            return "";
        }
        if (content.isTextual()) {
            return content.asText();
        }
        if (content.isArray()) {
            StringBuilder sb = new StringBuilder();
            for (JsonNode part : content) {
                if (!part.isObject() || !"text".equals(part.path("type").asText()) || !part.path("text").isTextual()) {
                    throw OpenAiException.badRequest(where,
                            where + " parts must be {\"type\": \"text\", \"text\": ...}; other part types are not supported.");
                }
                sb.append(part.get("text").asText());
            }
            return sb.toString();
        }
        throw OpenAiException.badRequest(where, where + " must be a string or a list of text parts.");
    }

    private static List<String> stopStrings(JsonNode stop) {
        if (stop == null || stop.isNull()) {
            return List.of();
        }
        if (stop.isTextual()) {
            return stop.asText().isEmpty() ? List.of() : List.of(stop.asText());
        }
        if (stop.isArray()) {
            List<String> out = new ArrayList<>();
            for (JsonNode s : stop) {
                if (!s.isTextual()) {
                    throw OpenAiException.badRequest("stop", "'stop' must be a string or a list of strings.");
                }
                if (!s.asText().isEmpty()) {
                    out.add(s.asText());
                }
            }
            return out;
        }
        throw OpenAiException.badRequest("stop", "'stop' must be a string or a list of strings.");
    }

    private static Map<String, Object> chatTemplateKwargs(JsonNode node) {
        if (node == null || node.isNull()) {
            return Map.of();
        }
        if (!node.isObject()) {
            throw OpenAiException.badRequest("chat_template_kwargs", "'chat_template_kwargs' must be an object.");
        }
        Map<String, Object> out = new LinkedHashMap<>();
        node.fields().forEachRemaining(e -> {
            JsonNode v = e.getValue();
            if (v.isBoolean()) {
                out.put(e.getKey(), v.asBoolean());
            } else if (v.isTextual()) {
                out.put(e.getKey(), v.asText());
            } else if (v.isNumber()) {
                out.put(e.getKey(), v.numberValue());
            } else {
                throw OpenAiException.badRequest("chat_template_kwargs." + e.getKey(),
                        "chat_template_kwargs values must be booleans, strings or numbers.");
            }
        });
        return out;
    }

    /** Typed access to optional fields; a wrong type is a 400 naming the field. */
    private static final class Fields {
        final ObjectNode root;
        final String prefix;

        Fields(ObjectNode root) {
            this(root, "");
        }

        Fields(ObjectNode root, String prefix) {
            this.root = root;
            this.prefix = prefix;
        }

        JsonNode required(String name) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) {
                throw OpenAiException.badRequest(prefix + name, "'" + prefix + name + "' is required.");
            }
            return n;
        }

        String optString(String name) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) {
                return null;
            }
            if (!n.isTextual()) {
                throw wrongType(name, "a string", n);
            }
            return n.asText();
        }

        Integer optInt(String name) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) {
                return null;
            }
            if (!n.isIntegralNumber() || !n.canConvertToInt()) {
                throw wrongType(name, "an integer", n);
            }
            return n.asInt();
        }

        Long optLong(String name) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) {
                return null;
            }
            if (!n.isIntegralNumber() || !n.canConvertToLong()) {
                throw wrongType(name, "an integer", n);
            }
            return n.asLong();
        }

        double optDouble(String name, double dflt) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (!n.isNumber()) {
                throw wrongType(name, "a number", n);
            }
            double v = n.asDouble();
            if (Double.isNaN(v) || Double.isInfinite(v)) {
                throw wrongType(name, "a finite number", n);
            }
            return v;
        }

        boolean optBoolean(String name, boolean dflt) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (!n.isBoolean()) {
                throw wrongType(name, "a boolean", n);
            }
            return n.asBoolean();
        }

        private OpenAiException wrongType(String name, String expected, JsonNode got) {
            String shown = got.toString();
            if (shown.length() > 40) {
                shown = shown.substring(0, 40) + "...";
            }
            return OpenAiException.badRequest(prefix + name, "'" + prefix + name + "' must be " + expected
                    + ", got " + shown + ".");
        }
    }
}
