package io.distserve.registry;

import com.fasterxml.jackson.annotation.JsonAnyGetter;
import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * What a node says about itself when it registers: the "status" object of LMDeploy's {@code POST /nodes/add}
 * ({@code {"role":"Prefill","models":["Qwen3-8B"],"speed":2.5}}), plus any other fields it sent, kept as they
 * came. The proxy's own counters (in-flight, latency) are not part of it: the registry measures those.
 *
 * @param role   the node's role; Hybrid when the node did not say (LMDeploy's default)
 * @param models the model names it serves, without duplicates; empty means it serves only requests naming no model
 * @param speed  a relative throughput used to weight routing, positive; null when not declared
 * @param extra  every other field the node reported, by name (read-only)
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record NodeStatus(
        @JsonProperty("role") NodeRole role,
        @JsonProperty("models") List<String> models,
        @JsonProperty("speed") Double speed,
        Map<String, JsonNode> extra) {

    /** LMDeploy's node-side copies of proxy counters; ours are measured by the registry, so these are dropped. */
    private static final Set<String> LMDEPLOY_COUNTERS = Set.of("unfinished", "latency");

    public NodeStatus {
        Objects.requireNonNull(role, "role");
        models = List.copyOf(new LinkedHashSet<>(Objects.requireNonNull(models, "models")));
        for (String model : models) {
            if (model.isBlank()) {
                throw new IllegalArgumentException("status.models must not contain a blank model name");
            }
        }
        if (speed != null && !(speed > 0 && Double.isFinite(speed))) {
            throw new IllegalArgumentException("status.speed must be a positive number, got " + speed);
        }
        extra = extra == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(extra));
    }

    public NodeStatus(NodeRole role, List<String> models, Double speed) {
        this(role, models, speed, Map.of());
    }

    /** Whether this node serves {@code model}; a null or blank model means "any node will do". */
    public boolean serves(String model) {
        return model == null || model.isBlank() || models.contains(model);
    }

    /** The other reported fields, written back at the top level of the status object. */
    @Override
    @JsonAnyGetter
    public Map<String, JsonNode> extra() {
        return extra;
    }

    /** The persisted part: what defines the node, without the reported extras. */
    NodeStatus withoutExtra() {
        return extra.isEmpty() ? this : new NodeStatus(role, models, speed, Map.of());
    }

    /**
     * Reads a status object as sent to {@code /nodes/add}, with a clear message for every malformed field.
     *
     * @throws IllegalArgumentException when the object or one of its fields is malformed (the HTTP layer's 400)
     */
    @JsonCreator(mode = JsonCreator.Mode.DELEGATING)
    public static NodeStatus fromJson(JsonNode json) {
        if (json == null || !json.isObject()) {
            throw new IllegalArgumentException("status must be a JSON object");
        }
        NodeRole role = NodeRole.Hybrid;
        List<String> models = List.of();
        Double speed = null;
        Map<String, JsonNode> extra = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> field : json.properties()) {
            JsonNode value = field.getValue();
            switch (field.getKey()) {
                case "role":
                    if (!value.isNull()) {
                        if (!value.isTextual()) {
                            throw new IllegalArgumentException("status.role must be a string");
                        }
                        role = NodeRole.parse(value.asText());
                    }
                    break;
                case "models":
                    models = readModels(value);
                    break;
                case "speed":
                    if (!value.isNull()) {
                        if (!value.isNumber()) {
                            throw new IllegalArgumentException("status.speed must be a positive number");
                        }
                        speed = value.doubleValue();
                    }
                    break;
                default:
                    if (!LMDEPLOY_COUNTERS.contains(field.getKey())) {
                        extra.put(field.getKey(), value.deepCopy());
                    }
            }
        }
        return new NodeStatus(role, models, speed, extra);
    }

    private static List<String> readModels(JsonNode value) {
        if (value.isNull()) {
            return List.of();
        }
        if (!value.isArray()) {
            throw new IllegalArgumentException("status.models must be a list of model names");
        }
        List<String> models = new ArrayList<>();
        for (JsonNode item : value) {
            if (!item.isTextual() || item.asText().isBlank()) {
                throw new IllegalArgumentException("status.models must be a list of non-empty strings");
            }
            models.add(item.asText());
        }
        return models;
    }
}
