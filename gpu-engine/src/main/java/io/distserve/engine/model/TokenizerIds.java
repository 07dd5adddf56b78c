package io.distserve.engine.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What a checkpoint's config needs from its tokenizer: how many ids it uses and which are BOS, EOS and padding.
 *
 * @param idCount           highest id + 1 (the embedding must have at least this many rows)
 * @param bosId             {@code bos_token}, or {@code <|endoftext|>} when the tokenizer declares none (as Qwen's
 *                          config does)
 * @param eosId             {@code eos_token}
 * @param padId             {@code pad_token}, or the EOS id when none
 * @param generationEosIds  ids that end generation: the EOS token and {@code <|endoftext|>} when distinct
 */
public record TokenizerIds(int idCount, int bosId, int eosId, int padId, List<Integer> generationEosIds) {

    private static final ObjectMapper JSON = new ObjectMapper();

    public TokenizerIds {
        generationEosIds = List.copyOf(generationEosIds);
    }

    public static TokenizerIds of(BuiltInTokenizer tokenizer) {
        return new TokenizerIds(tokenizer.size(), tokenizer.endOfTextId(), tokenizer.imEndId(),
                tokenizer.endOfTextId(), List.of(tokenizer.imEndId(), tokenizer.endOfTextId()));
    }

    /** Reads {@code tokenizer.json} and {@code tokenizer_config.json} of a Hugging Face tokenizer folder. */
    public static TokenizerIds read(Path folder) {
        Path tokenizerFile = folder.resolve("tokenizer.json");
        Path configFile = folder.resolve("tokenizer_config.json");
        JsonNode tokenizer = readJson(tokenizerFile);
        JsonNode config = readJson(configFile);
        Map<String, Integer> ids = new HashMap<>();
        JsonNode vocab = tokenizer.path("model").path("vocab");
        if (!vocab.isObject() || vocab.isEmpty()) {
            throw new CheckpointException(tokenizerFile + ": 'model.vocab' is missing or empty");
        }
        for (Map.Entry<String, JsonNode> e : vocab.properties()) {
            ids.put(e.getKey(), e.getValue().asInt());
        }
        for (JsonNode added : tokenizer.path("added_tokens")) {
            ids.put(added.path("content").asText(), added.path("id").asInt());
        }
        int idCount = ids.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;

        Integer endOfText = ids.get(BuiltInTokenizer.END_OF_TEXT);
        Integer eos = tokenId(configFile, config, "eos_token", ids);
        if (eos == null) {
            eos = endOfText;
        }
        if (eos == null) {
            throw new CheckpointException(configFile + ": no 'eos_token', and no " + BuiltInTokenizer.END_OF_TEXT
                    + " token to fall back on");
        }
        Integer bos = tokenId(configFile, config, "bos_token", ids);
        if (bos == null) {
            bos = endOfText != null ? endOfText : eos;
        }
        Integer pad = tokenId(configFile, config, "pad_token", ids);
        List<Integer> generationEos = new ArrayList<>(List.of(eos));
        if (endOfText != null && !endOfText.equals(eos)) {
            generationEos.add(endOfText);
        }
        return new TokenizerIds(idCount, bos, eos, pad != null ? pad : eos, generationEos);
    }

    /** A special token given as a string or as {@code {"content": ...}}; null when absent or null. */
    private static Integer tokenId(Path file, JsonNode config, String field, Map<String, Integer> ids) {
        JsonNode node = config.get(field);
        if (node == null || node.isNull()) {
            return null;
        }
        String content = node.isObject() ? node.path("content").asText() : node.asText();
        Integer id = ids.get(content);
        if (id == null) {
            throw new CheckpointException(file + ": " + field + " '" + content + "' is not a token of tokenizer.json");
        }
        return id;
    }

    private static JsonNode readJson(Path file) {
        try {
            JsonNode node = JSON.readTree(Files.readString(file));
            if (node == null || !node.isObject()) {
                throw new CheckpointException(file + ": not a JSON object");
            }
            return node;
        } catch (NoSuchFileException e) {
            throw new CheckpointException(file + ": not found (a tokenizer folder needs tokenizer.json and "
                    + "tokenizer_config.json)", e);
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot read: " + e.getMessage(), e);
        }
    }
}
