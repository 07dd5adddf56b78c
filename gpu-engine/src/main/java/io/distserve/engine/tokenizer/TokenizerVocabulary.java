package io.distserve.engine.tokenizer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.exc.StreamReadException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * What the engine needs from tokenizer.json that DJL does not expose: the token-to-id table (model vocabulary plus
 * added tokens), which added tokens are special, and the vocabulary size. Read with a streaming parser: the file
 * is large (Qwen3: 11 MB, mostly merges, which are skipped), and reading it first also gives a clear error naming
 * the file for a corrupt one instead of the native library's.
 *
 * @param tokenIds token string (in the model's own form, e.g. byte-level "Ġthe") to id
 * @param specialTokenIds ids of added tokens marked {@code "special": true}
 * @param size highest id + 1, i.e. Hugging Face's {@code len(tokenizer)}
 */
record TokenizerVocabulary(Map<String, Integer> tokenIds, Set<Integer> specialTokenIds, int size) {

    static TokenizerVocabulary read(Path file) {
        Map<String, Integer> tokenIds = new HashMap<>(1 << 18);
        Set<Integer> special = new HashSet<>();
        boolean sawModel = false;
        try (JsonParser parser = new JsonFactory().createParser(Files.newInputStream(file))) {
            expect(parser.nextToken(), JsonToken.START_OBJECT, file, "top level");
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String field = parser.currentName();
                JsonToken value = parser.nextToken();
                if ("added_tokens".equals(field) && value == JsonToken.START_ARRAY) {
                    readAddedTokens(parser, file, tokenIds, special);
                } else if ("model".equals(field) && value == JsonToken.START_OBJECT) {
                    sawModel = true;
                    readModel(parser, file, tokenIds);
                } else {
                    parser.skipChildren();
                }
            }
        } catch (NoSuchFileException e) {
            throw new InvalidTokenizerFileException(file, "file not found", e);
        } catch (StreamReadException e) {
            throw new InvalidTokenizerFileException(file, "not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new InvalidTokenizerFileException(file, "cannot read: " + e.getMessage(), e);
        }
        if (!sawModel) {
            throw new InvalidTokenizerFileException(file, "field 'model' is missing");
        }
        if (tokenIds.isEmpty()) {
            throw new InvalidTokenizerFileException(file, "field 'model.vocab' is missing or empty");
        }
        int maxId = tokenIds.values().stream().mapToInt(Integer::intValue).max().orElse(-1);
        // wrapped, not copied: the table has one entry per token (151k for Qwen3)
        return new TokenizerVocabulary(Collections.unmodifiableMap(tokenIds), Set.copyOf(special), maxId + 1);
    }

    private static void readAddedTokens(JsonParser parser, Path file, Map<String, Integer> tokenIds,
                                        Set<Integer> special) throws IOException {
        while (parser.nextToken() == JsonToken.START_OBJECT) {
            Integer id = null;
            String content = null;
            boolean isSpecial = false;
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String field = parser.currentName();
                JsonToken value = parser.nextToken();
                switch (field) {
                    case "id" -> id = value == JsonToken.VALUE_NUMBER_INT ? parser.getIntValue() : null;
                    case "content" -> content = value == JsonToken.VALUE_STRING ? parser.getText() : null;
                    case "special" -> isSpecial = value == JsonToken.VALUE_TRUE;
                    default -> parser.skipChildren();
                }
            }
            if (id == null || content == null) {
                throw new InvalidTokenizerFileException(file,
                        "field 'added_tokens' has an entry without an integer 'id' and a string 'content'");
            }
            tokenIds.put(content, id);
            if (isSpecial) {
                special.add(id);
            }
        }
    }

    private static void readModel(JsonParser parser, Path file, Map<String, Integer> tokenIds) throws IOException {
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String field = parser.currentName();
            JsonToken value = parser.nextToken();
            if ("vocab".equals(field) && value == JsonToken.START_OBJECT) {
                // BPE / WordPiece / WordLevel: {"token": id, ...}
                while (parser.nextToken() == JsonToken.FIELD_NAME) {
                    String token = parser.currentName();
                    expect(parser.nextToken(), JsonToken.VALUE_NUMBER_INT, file, "model.vocab[\"" + token + "\"]");
                    tokenIds.putIfAbsent(token, parser.getIntValue());
                }
            } else if ("vocab".equals(field) && value == JsonToken.START_ARRAY) {
                // Unigram: [["token", score], ...], the id is the position
                int id = 0;
                while (parser.nextToken() == JsonToken.START_ARRAY) {
                    expect(parser.nextToken(), JsonToken.VALUE_STRING, file, "model.vocab[" + id + "]");
                    tokenIds.putIfAbsent(parser.getText(), id++);
                    while (parser.nextToken() != JsonToken.END_ARRAY) {
                        parser.skipChildren();
                    }
                }
            } else {
                parser.skipChildren();
            }
        }
    }

    private static void expect(JsonToken actual, JsonToken expected, Path file, String where) {
        if (actual != expected) {
            throw new InvalidTokenizerFileException(file, "field '" + where + "': expected " + expected
                    + " but found " + actual);
        }
    }
}
