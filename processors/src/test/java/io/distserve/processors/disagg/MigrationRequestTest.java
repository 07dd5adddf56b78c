package io.distserve.processors.disagg;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.processors.openai.OpenAiException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class MigrationRequestTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String VALID = "{\"protocol\":\"tcp\",\"remote_engine_id\":\"engine-p\","
            + "\"remote_session_id\":\"cmpl-1\",\"remote_block_ids\":[4,0,7],\"remote_token_id\":42,"
            + "\"prompt_token_ids\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,"
            + "31,32,33,34,35,36,37,38,39,40]}";

    private static JsonNode json(String s) {
        try {
            return JSON.readTree(s);
        } catch (Exception e) {
            throw new IllegalArgumentException(s, e);
        }
    }

    /** The valid request with one field replaced by raw JSON ({@code null}: removed). */
    private static JsonNode with(String field, String rawValue) {
        ObjectNode node = (ObjectNode) json(VALID);
        if (rawValue == null) {
            node.remove(field);
        } else {
            node.set(field, json(rawValue));
        }
        return node;
    }

    private static void assertRejected(JsonNode node, String param) {
        assertThatThrownBy(() -> MigrationRequest.parse(node))
                .isInstanceOfSatisfying(OpenAiException.class, e -> {
                    assertThat(e.status()).isEqualTo(400);
                    assertThat(e.type()).isEqualTo("invalid_request_error");
                    assertThat(e.param()).isEqualTo(param);
                    assertThat(e.getMessage()).contains(param);
                });
    }

    @Test
    void parsesAValidRequest() {
        MigrationRequest r = MigrationRequest.parse(json(VALID));
        assertThat(r.protocol()).isEqualTo("tcp");
        assertThat(r.remoteEngineId()).isEqualTo("engine-p");
        assertThat(r.remoteSessionId()).isEqualTo("cmpl-1");
        assertThat(r.remoteBlockIds()).containsExactly(4, 0, 7);
        assertThat(r.remoteTokenId()).isEqualTo(42);
        assertThat(r.promptTokenIds()).hasSize(40).startsWith(1, 2, 3).endsWith(40);
    }

    @Test
    void unknownExtraFieldsAreIgnored() {
        ObjectNode node = (ObjectNode) json(VALID);
        node.put("future_field", "x");
        assertThat(MigrationRequest.parse(node).remoteSessionId()).isEqualTo("cmpl-1");
    }

    @ParameterizedTest
    @ValueSource(strings = {"null", "\"tcp\"", "[]", "[1,2]", "42", "true"})
    void notAnObject(String raw) {
        assertRejected(json(raw), "migration_request");
    }

    @Test
    void javaNullIsNotAnObject() {
        assertRejected(null, "migration_request");
    }

    @ParameterizedTest(name = "{0} = {1}")
    @CsvSource(delimiter = '|', nullValues = "MISSING", value = {
            "protocol          | MISSING",
            "protocol          | \"\"",
            "protocol          | \"   \"",
            "protocol          | 5",
            "protocol          | null",
            "protocol          | [\"tcp\"]",
            "remote_engine_id  | MISSING",
            "remote_engine_id  | \"\"",
            "remote_engine_id  | {}",
            "remote_session_id | MISSING",
            "remote_session_id | \" \"",
            "remote_session_id | 17",
    })
    void badStrings(String field, String raw) {
        assertRejected(with(field, raw), "migration_request." + field);
    }

    @ParameterizedTest(name = "{0} = {1}")
    @CsvSource(delimiter = '|', nullValues = "MISSING", value = {
            "remote_block_ids  | MISSING",
            "remote_block_ids  | null",
            "remote_block_ids  | 3",
            "remote_block_ids  | \"[1,2]\"",
            "remote_block_ids  | {\"0\":1}",
            "remote_block_ids  | []",
            "remote_block_ids  | [1,-1]",
            "remote_block_ids  | [1.5]",
            "remote_block_ids  | [1.0]",
            "remote_block_ids  | [1e2]",
            "remote_block_ids  | [2147483648]",
            "remote_block_ids  | [99999999999999999999999]",
            "remote_block_ids  | [\"1\"]",
            "remote_block_ids  | [null]",
            "remote_block_ids  | [true]",
            "remote_block_ids  | [[1]]",
            "remote_block_ids  | [3,5,3]",
            "remote_block_ids  | [0,0]",
            "prompt_token_ids  | MISSING",
            "prompt_token_ids  | []",
            "prompt_token_ids  | \"hello\"",
            "prompt_token_ids  | [1,-5]",
            "prompt_token_ids  | [0.5]",
            "prompt_token_ids  | [4294967296]",
            "prompt_token_ids  | [\"7\"]",
            "remote_token_id   | MISSING",
            "remote_token_id   | null",
            "remote_token_id   | \"42\"",
            "remote_token_id   | 42.5",
            "remote_token_id   | 42.0",
            "remote_token_id   | -1",
            "remote_token_id   | 2147483648",
            "remote_token_id   | 1e30",
            "remote_token_id   | true",
            "remote_token_id   | [42]",
            "remote_token_id   | {}",
    })
    void badNumbers(String field, String raw) {
        assertRejected(with(field, raw), "migration_request." + field);
    }

    @Test
    void aHugeListIsRejectedBeforeItsElementsAreCopied() {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i <= 1_000_000; i++) {
            sb.append(i == 0 ? "" : ",").append('0');
        }
        assertRejected(with("prompt_token_ids", sb.append(']').toString()), "migration_request.prompt_token_ids");
    }

    @Test
    void theSameTokenMayRepeatInThePrompt() {
        MigrationRequest r = MigrationRequest.parse(with("prompt_token_ids", "[7,7,7]"));
        assertThat(r.promptTokenIds()).containsExactly(7, 7, 7);
    }
}
