package io.distserve.processors.disagg;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.safetensors.DType;
import io.distserve.processors.openai.OpenAiException;

/** The KV layout in {@code engine_info} JSON, both ways. */
final class KvLayouts {

    static final String LAYOUT_NAME = "block_major[layer][k,v][kv_head][slot][head_dim]";

    private KvLayouts() {
    }

    static void write(KvCacheLayout layout, ObjectNode into) {
        into.put("num_layers", layout.numLayers());
        into.put("num_kv_heads", layout.numKvHeads());
        into.put("head_dim", layout.headDim());
        into.put("block_size", layout.blockSize());
        into.put("num_blocks", layout.numBlocks());
        into.put("dtype", layout.dtype().name().toLowerCase());
        into.put("bytes_per_block", layout.bytesPerBlock());
        into.put("layout", LAYOUT_NAME);
    }

    static KvCacheLayout read(JsonNode node, String param) {
        try {
            if (!LAYOUT_NAME.equals(node.path("layout").asText())) {
                throw OpenAiException.badRequest(param, param + ".layout '" + node.path("layout").asText()
                        + "' is not ours (" + LAYOUT_NAME + ")");
            }
            return new KvCacheLayout(positive(node, "num_layers", param), positive(node, "num_kv_heads", param),
                    positive(node, "head_dim", param), positive(node, "block_size", param),
                    positive(node, "num_blocks", param), DType.valueOf(node.path("dtype").asText("").toUpperCase()));
        } catch (IllegalArgumentException e) {
            throw OpenAiException.badRequest(param, param + " is not a valid KV layout: " + e.getMessage());
        }
    }

    private static int positive(JsonNode node, String field, String param) {
        JsonNode v = node.get(field);
        if (v == null || !v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 1) {
            throw OpenAiException.badRequest(param + "." + field, param + "." + field + " must be a positive integer");
        }
        return v.asInt();
    }
}
