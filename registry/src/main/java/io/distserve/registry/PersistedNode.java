package io.distserve.registry;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;

/**
 * What survives a proxy restart about one node: its identity and declaration, none of the counters or health
 * (those describe the past process and would be stale). Validated on construction, so a hand-edited file with a
 * bad entry is refused as a whole instead of half-loaded.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
@JsonInclude(JsonInclude.Include.NON_NULL)
public record PersistedNode(
        @JsonProperty("url") String url,
        @JsonProperty("role") NodeRole role,
        @JsonProperty("models") List<String> models,
        @JsonProperty("speed") Double speed) {

    public PersistedNode {
        url = NodeUrl.normalize(url);
        if (role == null) {
            throw new IllegalArgumentException("role is required for " + url);
        }
        models = models == null ? List.of() : models;
        // Reuses the status rules (positive speed, non-blank distinct models).
        NodeStatus checked = new NodeStatus(role, models, speed);
        models = checked.models();
    }

    NodeStatus toStatus() {
        return new NodeStatus(role, models, speed);
    }

    static PersistedNode of(String url, NodeStatus status) {
        return new PersistedNode(url, status.role(), status.models(), status.speed());
    }
}
