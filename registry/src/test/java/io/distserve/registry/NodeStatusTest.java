package io.distserve.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class NodeStatusTest {

    private final ObjectMapper json = new ObjectMapper();

    private NodeStatus read(String text) throws Exception {
        return NodeStatus.fromJson(json.readTree(text));
    }

    @Test
    void rolesUseLmdeploysJsonNames() throws Exception {
        assertThat(json.writeValueAsString(List.of(NodeRole.Hybrid, NodeRole.Prefill, NodeRole.Decode)))
                .isEqualTo("[\"Hybrid\",\"Prefill\",\"Decode\"]");
        assertThat(NodeRole.parse("prefill")).isEqualTo(NodeRole.Prefill);
        assertThatThrownBy(() -> NodeRole.parse("Encoder"))
                .hasMessageContaining("Hybrid, Prefill, Decode");
    }

    @Test
    void readsAnLmdeployRegistrationKeepingExtrasAndDroppingItsCounters() throws Exception {
        NodeStatus s = read("{\"role\":\"Prefill\",\"models\":[\"Qwen3-8B\",\"Qwen3-8B\"],\"speed\":2.5,"
                + "\"unfinished\":3,\"latency\":[1.0],\"engine_id\":\"p0\"}");
        assertThat(s.role()).isEqualTo(NodeRole.Prefill);
        assertThat(s.models()).containsExactly("Qwen3-8B");
        assertThat(s.speed()).isEqualTo(2.5);
        assertThat(s.extra()).containsOnlyKeys("engine_id");
        assertThat(s.serves("Qwen3-8B")).isTrue();
        assertThat(s.serves("other")).isFalse();
        assertThat(s.serves(null)).isTrue();
    }

    @Test
    void defaultsToHybridWithNoModelsAndNoSpeed() throws Exception {
        NodeStatus s = read("{}");
        assertThat(s.role()).isEqualTo(NodeRole.Hybrid);
        assertThat(s.models()).isEmpty();
        assertThat(s.speed()).isNull();
    }

    @Test
    void writesBackTheSameShapeWithExtrasAtTheTopLevel() throws Exception {
        NodeStatus s = read("{\"role\":\"Decode\",\"models\":[\"m\"],\"engine_id\":\"d1\"}");
        JsonNode written = json.valueToTree(s);
        assertThat(written.toString()).isEqualTo("{\"role\":\"Decode\",\"models\":[\"m\"],\"engine_id\":\"d1\"}");
        assertThat(json.treeToValue(written, NodeStatus.class)).isEqualTo(s);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "[]                              | status must be a JSON object",
            "{\"role\":\"Encoder\"}          | Unknown node role",
            "{\"role\":3}                    | status.role must be a string",
            "{\"models\":\"m\"}              | status.models must be a list",
            "{\"models\":[\"\"]}             | non-empty strings",
            "{\"models\":[1]}                | non-empty strings",
            "{\"speed\":0}                   | status.speed must be a positive number",
            "{\"speed\":-1.5}                | status.speed must be a positive number",
            "{\"speed\":\"fast\"}            | status.speed must be a positive number",
    })
    void refusesMalformedFieldsWithAMessageNamingThem(String body, String message) {
        assertThatThrownBy(() -> read(body))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }
}
