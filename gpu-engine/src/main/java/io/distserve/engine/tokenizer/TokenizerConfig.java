package io.distserve.engine.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * The parts of a Hugging Face tokenizer_config.json the engine uses.
 *
 * @param chatTemplate the Jinja chat template (for the list-of-named-templates form, the one named "default"),
 *                     or empty when the model has none
 * @param bosToken     text of the beginning-of-sequence token, or null
 * @param eosToken     text of the end-of-sequence token, or null
 * @param padToken     text of the padding token, or null
 * @param unkToken     text of the unknown token, or null
 * @param addBosToken  whether the slow tokenizer prepends BOS (templates normally write it themselves)
 * @param modelMaxLength the longest input the model takes, empty when unset or "unlimited" (HF writes 1e30)
 * @param specialAddedTokens id to text of the added_tokens_decoder entries marked special
 */
public record TokenizerConfig(Optional<String> chatTemplate, String bosToken, String eosToken, String padToken,
                              String unkToken, boolean addBosToken, OptionalLong modelMaxLength,
                              Map<Integer, String> specialAddedTokens) {

    public static final String FILE_NAME = "tokenizer_config.json";

    /** HF's VERY_LARGE_INTEGER is 1e30; anything beyond a long means "no limit". */
    private static final double UNLIMITED_THRESHOLD = 1e18;

    public TokenizerConfig {
        specialAddedTokens = Map.copyOf(specialAddedTokens);
    }

    /** A model folder without tokenizer_config.json: no template, no named special tokens. */
    public static TokenizerConfig absent() {
        return new TokenizerConfig(Optional.empty(), null, null, null, null, false, OptionalLong.empty(), Map.of());
    }

    public static TokenizerConfig read(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readString(file));
        } catch (NoSuchFileException e) {
            throw new InvalidTokenizerFileException(file, "file not found", e);
        } catch (JsonProcessingException e) {
            throw new InvalidTokenizerFileException(file, "not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new InvalidTokenizerFileException(file, "cannot read: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new InvalidTokenizerFileException(file, "expected a JSON object at the top level");
        }
        return new TokenizerConfig(
                chatTemplate(file, root.get("chat_template")),
                tokenText(file, root, "bos_token"),
                tokenText(file, root, "eos_token"),
                tokenText(file, root, "pad_token"),
                tokenText(file, root, "unk_token"),
                bool(file, root, "add_bos_token"),
                modelMaxLength(file, root.get("model_max_length")),
                specialAddedTokens(file, root.get("added_tokens_decoder")));
    }

    /** The special-token variables Hugging Face passes to chat templates: only the tokens that are set. */
    public Map<String, Object> specialTokenVariables() {
        Map<String, Object> variables = new LinkedHashMap<>();
        putIfSet(variables, "bos_token", bosToken);
        putIfSet(variables, "eos_token", eosToken);
        putIfSet(variables, "unk_token", unkToken);
        putIfSet(variables, "pad_token", padToken);
        return variables;
    }

    private static void putIfSet(Map<String, Object> variables, String name, String value) {
        if (value != null) {
            variables.put(name, value);
        }
    }

    private static Optional<String> chatTemplate(Path file, JsonNode node) {
        if (node == null || node.isNull()) {
            return Optional.empty();
        }
        if (node.isTextual()) {
            return Optional.of(node.asText());
        }
        if (node.isArray()) {
            // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]: apply_chat_template's default
            for (JsonNode named : node) {
                JsonNode name = named.get("name");
                JsonNode template = named.get("template");
                if (name == null || !name.isTextual() || template == null || !template.isTextual()) {
                    throw new InvalidTokenizerFileException(file,
                            "field 'chat_template': each entry needs string 'name' and 'template'");
                }
                if ("default".equals(name.asText())) {
                    return Optional.of(template.asText());
                }
            }
            throw new InvalidTokenizerFileException(file,
                    "field 'chat_template' lists named templates but none is named 'default'");
        }
        throw new InvalidTokenizerFileException(file,
                "field 'chat_template' must be a string or a list of named templates, not " + node.getNodeType());
    }

    /** A special token is written either as its text or as an AddedToken object {"content": ...}. */
    private static String tokenText(Path file, JsonNode root, String field) {
        JsonNode node = root.get(field);
        if (node == null || node.isNull()) {
            return null;
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isObject() && node.path("content").isTextual()) {
            return node.get("content").asText();
        }
        throw new InvalidTokenizerFileException(file,
                "field '" + field + "' must be a string or an object with a string 'content'");
    }

    private static boolean bool(Path file, JsonNode root, String field) {
        JsonNode node = root.get(field);
        if (node == null || node.isNull()) {
            return false;
        }
        if (!node.isBoolean()) {
            throw new InvalidTokenizerFileException(file, "field '" + field + "' must be true or false");
        }
        return node.asBoolean();
    }

    private static OptionalLong modelMaxLength(Path file, JsonNode node) {
        if (node == null || node.isNull()) {
            return OptionalLong.empty();
        }
        if (!node.isNumber() || node.asDouble() < 1) {
            throw new InvalidTokenizerFileException(file, "field 'model_max_length' must be a positive number");
        }
        if (node.asDouble() >= UNLIMITED_THRESHOLD) {
            return OptionalLong.empty();
        }
        return OptionalLong.of(node.asLong());
    }

    private static Map<Integer, String> specialAddedTokens(Path file, JsonNode node) {
        Map<Integer, String> tokens = new LinkedHashMap<>();
        if (node == null || node.isNull()) {
            return tokens;
        }
        if (!node.isObject()) {
            throw new InvalidTokenizerFileException(file, "field 'added_tokens_decoder' must be an object");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> entry = it.next();
            String where = "added_tokens_decoder." + entry.getKey();
            int id;
            try {
                id = Integer.parseInt(entry.getKey());
            } catch (NumberFormatException e) {
                throw new InvalidTokenizerFileException(file, "field '" + where + "': the key must be a token id");
            }
            JsonNode token = entry.getValue();
            if (!token.isObject() || !token.path("content").isTextual()) {
                throw new InvalidTokenizerFileException(file, "field '" + where + "' needs a string 'content'");
            }
            if (token.path("special").asBoolean(false)) {
                tokens.put(id, token.get("content").asText());
            }
        }
        return tokens;
    }
}
