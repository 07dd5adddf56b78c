package io.distserve.processors.disagg;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.processors.openai.OpenAiException;

/**
 * The proxy's RDMA settings for a pair (LMDeploy's {@code --link-type} and {@code --disable-gdr}), sent in
 * {@code p2p_initialize} as {@code rdma_config}; the prefill engine checks its rdma endpoint against them.
 */
public record RdmaSettings(String linkType, boolean disableGdr) {

    public static final RdmaSettings DEFAULTS = new RdmaSettings("RoCE", false);

    public RdmaSettings {
        if (!"RoCE".equals(linkType) && !"IB".equals(linkType)) {
            throw new IllegalArgumentException("link type must be RoCE or IB, got '" + linkType + "'");
        }
    }

    public ObjectNode toJson(ObjectMapper json) {
        ObjectNode o = json.createObjectNode();
        o.put("link_type", linkType);
        o.put("disable_gdr", disableGdr);
        return o;
    }

    /** The {@code rdma_config} of a request, or null when absent; malformed: 400 naming the field. */
    public static RdmaSettings parse(JsonNode node) {
        if (node == null || node.isNull()) {
            return null;
        }
        if (!node.isObject()) {
            throw OpenAiException.badRequest("rdma_config", "'rdma_config' must be an object.");
        }
        JsonNode link = node.path("link_type");
        JsonNode gdr = node.path("disable_gdr");
        if (!link.isMissingNode() && !link.isTextual()) {
            throw OpenAiException.badRequest("rdma_config.link_type", "'link_type' must be RoCE or IB.");
        }
        if (!gdr.isMissingNode() && !gdr.isBoolean()) {
            throw OpenAiException.badRequest("rdma_config.disable_gdr", "'disable_gdr' must be true or false.");
        }
        String l = link.isMissingNode() ? "RoCE" : link.asText();
        if (l.equalsIgnoreCase("roce")) {
            l = "RoCE";
        } else if (l.equalsIgnoreCase("ib")) {
            l = "IB";
        } else {
            throw OpenAiException.badRequest("rdma_config.link_type", "'link_type' must be RoCE or IB, got '" + l
                    + "'.");
        }
        return new RdmaSettings(l, gdr.asBoolean(false));
    }
}
