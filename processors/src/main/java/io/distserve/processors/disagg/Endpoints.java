package io.distserve.processors.disagg;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.processors.openai.OpenAiException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Transfer endpoints in JSON, both ways (the transfer module has no JSON of its own). */
final class Endpoints {

    private Endpoints() {
    }

    static void write(EndpointInfo e, ObjectNode into) {
        into.put("transport", e.transport());
        into.put("host", e.host());
        into.put("port", e.port());
        into.put("region_size", e.regionSize());
        e.segmentSizes().forEach(into.putArray("segment_sizes")::add);
        into.put("token", e.token());
        ObjectNode attrs = into.putObject("attributes");
        e.attributes().forEach(attrs::put);
    }

    static EndpointInfo read(JsonNode node, String param) {
        if (node == null || !node.isObject()) {
            throw OpenAiException.badRequest(param, param + " must be an object");
        }
        try {
            List<Long> segments = new ArrayList<>();
            for (JsonNode s : node.path("segment_sizes")) {
                segments.add(s.asLong());
            }
            Map<String, String> attrs = new LinkedHashMap<>();
            node.path("attributes").properties().forEach(e -> attrs.put(e.getKey(), e.getValue().asText()));
            return new EndpointInfo(text(node, "transport", param), text(node, "host", param),
                    node.path("port").asInt(-1), node.path("region_size").asLong(-1), segments,
                    text(node, "token", param), attrs);
        } catch (IllegalArgumentException | NullPointerException e) {
            throw OpenAiException.badRequest(param, param + " is not a valid endpoint: " + e.getMessage());
        }
    }

    private static String text(JsonNode node, String field, String param) {
        JsonNode v = node.get(field);
        if (v == null || !v.isTextual()) {
            throw OpenAiException.badRequest(param + "." + field, param + "." + field + " must be a string");
        }
        return v.asText();
    }
}
