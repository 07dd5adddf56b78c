package io.distserve.engine.model;

/**
 * Hugging Face names of the tensors of decoder layer {@code index} (Llama and Qwen3 share them; only Qwen3 has
 * {@link #qNorm} and {@link #kNorm}). Obtain through {@link ModelTensors#layer(int)}.
 */
public record LayerTensorNames(int index) {

    public LayerTensorNames {
        if (index < 0) {
            throw new IllegalArgumentException("layer index " + index);
        }
    }

    private String name(String suffix) {
        return "model.layers." + index + "." + suffix;
    }

    public String inputLayernorm() {
        return name("input_layernorm.weight");
    }

    public String qProj() {
        return name("self_attn.q_proj.weight");
    }

    public String kProj() {
        return name("self_attn.k_proj.weight");
    }

    public String vProj() {
        return name("self_attn.v_proj.weight");
    }

    public String oProj() {
        return name("self_attn.o_proj.weight");
    }

    /** Per-head RMSNorm weight applied to queries before RoPE (Qwen3 only). */
    public String qNorm() {
        return name("self_attn.q_norm.weight");
    }

    /** Per-head RMSNorm weight applied to keys before RoPE (Qwen3 only). */
    public String kNorm() {
        return name("self_attn.k_norm.weight");
    }

    public String postAttentionLayernorm() {
        return name("post_attention_layernorm.weight");
    }

    public String gateProj() {
        return name("mlp.gate_proj.weight");
    }

    public String upProj() {
        return name("mlp.up_proj.weight");
    }

    public String downProj() {
        return name("mlp.down_proj.weight");
    }
}
