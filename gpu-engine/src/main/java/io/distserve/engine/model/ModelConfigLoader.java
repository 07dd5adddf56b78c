package io.distserve.engine.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads {@link ModelConfig} from a Hugging Face folder's {@code config.json} (and the EOS ids of
 * {@code generation_config.json}, when present). Anything the backends could not honour (another architecture,
 * biases, non-SiLU activations, RoPE scaling) is refused here rather than computed wrongly later.
 */
public final class ModelConfigLoader {

    public static final String CONFIG_FILE = "config.json";
    public static final String GENERATION_CONFIG_FILE = "generation_config.json";

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Per architecture: whether q/k are RMSNormed per head, and the RoPE base Hugging Face assumes when absent. */
    private record Family(boolean qkNorm, double defaultRopeTheta) {
    }

    private static final Map<String, Family> FAMILIES = Map.of(
            "qwen3", new Family(true, 1_000_000.0),
            "llama", new Family(false, 10_000.0));

    private ModelConfigLoader() {
    }

    public static ModelConfig load(Path folder) {
        Path file = folder.resolve(CONFIG_FILE);
        Fields f = new Fields(file, readObject(file, true));
        String modelType = f.requiredString("model_type");
        Family family = FAMILIES.get(modelType);
        if (family == null) {
            throw f.error("model_type '" + modelType + "' is not supported (supported: qwen3, llama)");
        }
        int hidden = f.requiredPositiveInt("hidden_size");
        int heads = f.requiredPositiveInt("num_attention_heads");
        int kvHeads = f.optionalPositiveInt("num_key_value_heads", heads);
        if (heads % kvHeads != 0) {
            throw f.error("num_attention_heads " + heads + " is not a multiple of num_key_value_heads " + kvHeads);
        }
        int headDim;
        if (f.has("head_dim")) {
            headDim = f.requiredPositiveInt("head_dim");
        } else if (hidden % heads == 0) {
            headDim = hidden / heads;
        } else {
            throw f.error("head_dim is absent and hidden_size " + hidden + " is not a multiple of num_attention_heads "
                    + heads);
        }
        if (headDim % 2 != 0) {
            throw f.error("head_dim " + headDim + " is odd; rotary embeddings need an even head_dim");
        }
        f.refuseTrue("attention_bias");
        f.refuseTrue("mlp_bias");
        if (f.has("hidden_act") && !f.requiredString("hidden_act").equals("silu")) {
            throw f.error("hidden_act '" + f.requiredString("hidden_act") + "' is not supported (supported: silu)");
        }
        refuseRopeScaling(f);

        List<Integer> eos = new ArrayList<>(f.tokenIds("eos_token_id"));
        Path generationFile = folder.resolve(GENERATION_CONFIG_FILE);
        JsonNode generation = readObject(generationFile, false);
        if (generation != null) {
            Set<Integer> union = new LinkedHashSet<>(eos);
            union.addAll(new Fields(generationFile, generation).tokenIds("eos_token_id"));
            eos = new ArrayList<>(union);
        }
        List<Integer> bos = f.tokenIds("bos_token_id");

        String dtype = f.has("torch_dtype") ? f.requiredString("torch_dtype")
                : f.has("dtype") ? f.requiredString("dtype") : "float32";
        return new ModelConfig(
                modelType,
                hidden,
                f.requiredPositiveInt("intermediate_size"),
                f.requiredPositiveInt("num_hidden_layers"),
                heads,
                kvHeads,
                headDim,
                f.requiredPositiveInt("vocab_size"),
                f.requiredPositiveInt("max_position_embeddings"),
                ropeTheta(f, family),
                f.optionalPositiveDouble("rms_norm_eps", 1e-6),
                f.optionalBoolean("tie_word_embeddings", false),
                family.qkNorm(),
                bos.isEmpty() ? -1 : bos.get(0),
                eos,
                dtype);
    }

    /** Transformers 5 moved {@code rope_theta} into {@code rope_parameters}; accept both spellings. */
    private static double ropeTheta(Fields f, Family family) {
        if (f.has("rope_theta")) {
            return f.optionalPositiveDouble("rope_theta", family.defaultRopeTheta());
        }
        JsonNode parameters = f.node("rope_parameters");
        if (parameters != null && parameters.isObject() && parameters.has("rope_theta")) {
            JsonNode theta = parameters.get("rope_theta");
            if (!theta.isNumber() || theta.asDouble() <= 0) {
                throw f.error("field 'rope_parameters.rope_theta' must be a positive number, got " + theta);
            }
            return theta.asDouble();
        }
        return family.defaultRopeTheta();
    }

    private static void refuseRopeScaling(Fields f) {
        for (String field : List.of("rope_scaling", "rope_parameters")) {
            JsonNode scaling = f.node(field);
            if (scaling == null || scaling.isNull()) {
                continue;
            }
            JsonNode type = scaling.has("rope_type") ? scaling.get("rope_type") : scaling.get("type");
            if (type != null && !type.isNull() && !type.asText().equals("default")) {
                throw f.error("field '" + field + "' asks for RoPE scaling '" + type.asText()
                        + "', which is not supported (only unscaled RoPE)");
            }
        }
    }

    private static JsonNode readObject(Path file, boolean required) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            if (required) {
                throw new CheckpointException(file + ": not found (is " + file.getParent() + " a model folder?)");
            }
            return null;
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot read: " + e.getMessage(), e);
        }
        try {
            JsonNode node = JSON.readTree(text);
            if (node == null || !node.isObject()) {
                throw new CheckpointException(file + ": not a JSON object");
            }
            return node;
        } catch (JsonProcessingException e) {
            throw new CheckpointException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
    }

    /** Typed access to the fields of one JSON file, with errors that name the file and the field. */
    private record Fields(Path file, JsonNode root) {

        CheckpointException error(String message) {
            return new CheckpointException(file + ": " + message);
        }

        /** Null for an absent field; a JSON null counts as absent, as in Hugging Face's configs. */
        JsonNode node(String field) {
            JsonNode node = root.get(field);
            return node == null || node.isNull() ? null : node;
        }

        boolean has(String field) {
            return node(field) != null;
        }

        String requiredString(String field) {
            JsonNode node = node(field);
            if (node == null) {
                throw error("required field '" + field + "' is missing");
            }
            if (!node.isTextual()) {
                throw error("field '" + field + "' must be a string, got " + node);
            }
            return node.asText();
        }

        int requiredPositiveInt(String field) {
            JsonNode node = node(field);
            if (node == null) {
                throw error("required field '" + field + "' is missing");
            }
            return positiveInt(field, node);
        }

        int optionalPositiveInt(String field, int fallback) {
            JsonNode node = node(field);
            return node == null ? fallback : positiveInt(field, node);
        }

        private int positiveInt(String field, JsonNode node) {
            if (!node.isIntegralNumber() || !node.canConvertToInt() || node.asInt() <= 0) {
                throw error("field '" + field + "' must be a positive integer, got " + node);
            }
            return node.asInt();
        }

        double optionalPositiveDouble(String field, double fallback) {
            JsonNode node = node(field);
            if (node == null) {
                return fallback;
            }
            if (!node.isNumber() || !(node.asDouble() > 0) || Double.isInfinite(node.asDouble())) {
                throw error("field '" + field + "' must be a positive number, got " + node);
            }
            return node.asDouble();
        }

        boolean optionalBoolean(String field, boolean fallback) {
            JsonNode node = node(field);
            if (node == null) {
                return fallback;
            }
            if (!node.isBoolean()) {
                throw error("field '" + field + "' must be true or false, got " + node);
            }
            return node.asBoolean();
        }

        void refuseTrue(String field) {
            if (optionalBoolean(field, false)) {
                throw error("field '" + field + "' is true; biases are not supported");
            }
        }

        /** A token id or a list of them (Hugging Face allows both); empty when absent. */
        List<Integer> tokenIds(String field) {
            JsonNode node = node(field);
            List<Integer> ids = new ArrayList<>();
            if (node == null) {
                return ids;
            }
            if (node.isArray()) {
                node.forEach(id -> ids.add(tokenId(field, id)));
            } else {
                ids.add(tokenId(field, node));
            }
            return ids;
        }

        private int tokenId(String field, JsonNode node) {
            if (!node.isIntegralNumber() || !node.canConvertToInt() || node.asInt() < 0) {
                throw error("field '" + field + "' must be a token id or a list of them, got " + node);
            }
            return node.asInt();
        }
    }
}
