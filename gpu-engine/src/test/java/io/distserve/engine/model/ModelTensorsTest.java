package io.distserve.engine.model;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

class ModelTensorsTest {

    private static final TokenizerIds QWEN_IDS =
            new TokenizerIds(151_669, 151_643, 151_645, 151_643, List.of(151_645, 151_643));

    private static Map<String, List<Long>> shapes(ModelConfig config) {
        return ModelTensors.expected(config).stream().collect(Collectors.toMap(ExpectedTensor::name,
                t -> java.util.Arrays.stream(t.shape()).boxed().toList()));
    }

    @Test
    void layerNamesFollowHuggingFace() {
        LayerTensorNames l = ModelTensors.layer(3);
        assertThat(List.of(l.inputLayernorm(), l.qProj(), l.kProj(), l.vProj(), l.oProj(), l.qNorm(), l.kNorm(),
                l.postAttentionLayernorm(), l.gateProj(), l.upProj(), l.downProj())).containsExactly(
                "model.layers.3.input_layernorm.weight",
                "model.layers.3.self_attn.q_proj.weight",
                "model.layers.3.self_attn.k_proj.weight",
                "model.layers.3.self_attn.v_proj.weight",
                "model.layers.3.self_attn.o_proj.weight",
                "model.layers.3.self_attn.q_norm.weight",
                "model.layers.3.self_attn.k_norm.weight",
                "model.layers.3.post_attention_layernorm.weight",
                "model.layers.3.mlp.gate_proj.weight",
                "model.layers.3.mlp.up_proj.weight",
                "model.layers.3.mlp.down_proj.weight");
    }

    @Test
    void qwen3_8bTensorsHaveTheRealShapes() {
        ModelConfig c = ModelShape.QWEN3_8B.config(QWEN_IDS);
        Map<String, List<Long>> shapes = shapes(c);
        assertThat(shapes).hasSize(1 + 36 * 11 + 1 + 1);
        assertThat(shapes.get("model.embed_tokens.weight")).containsExactly(151_936L, 4096L);
        assertThat(shapes.get("lm_head.weight")).containsExactly(151_936L, 4096L);
        assertThat(shapes.get("model.layers.35.self_attn.q_proj.weight")).containsExactly(4096L, 4096L);
        assertThat(shapes.get("model.layers.35.self_attn.k_proj.weight")).containsExactly(1024L, 4096L);
        assertThat(shapes.get("model.layers.35.self_attn.v_proj.weight")).containsExactly(1024L, 4096L);
        assertThat(shapes.get("model.layers.35.self_attn.o_proj.weight")).containsExactly(4096L, 4096L);
        assertThat(shapes.get("model.layers.35.self_attn.q_norm.weight")).containsExactly(128L);
        assertThat(shapes.get("model.layers.35.mlp.gate_proj.weight")).containsExactly(12_288L, 4096L);
        assertThat(shapes.get("model.layers.35.mlp.down_proj.weight")).containsExactly(4096L, 12_288L);
        assertThat(shapes.get("model.norm.weight")).containsExactly(4096L);
        // 8.19B: what Hugging Face reports for Qwen3-8B.
        assertThat(ModelTensors.parameterCount(c)).isEqualTo(8_190_735_360L);
        assertThat(ModelTensors.logitsWeight(c)).isEqualTo("lm_head.weight");
    }

    @Test
    void qwen3_0_6bIsTiedAndHasItsPublishedSize() {
        ModelConfig c = ModelShape.QWEN3_0_6B.config(QWEN_IDS);
        Map<String, List<Long>> shapes = shapes(c);
        assertThat(shapes).doesNotContainKey("lm_head.weight").hasSize(1 + 28 * 11 + 1);
        assertThat(shapes.get("model.layers.0.self_attn.q_proj.weight")).containsExactly(2048L, 1024L);
        assertThat(shapes.get("model.layers.0.self_attn.o_proj.weight")).containsExactly(1024L, 2048L);
        assertThat(ModelTensors.parameterCount(c)).isEqualTo(596_049_920L);
        assertThat(ModelTensors.logitsWeight(c)).isEqualTo("model.embed_tokens.weight");
    }

    @Test
    void llamaHasNoQkNorms() {
        ModelConfig c = new ModelConfig("llama", 64, 128, 2, 4, 2, 16, 100, 512, 1e4, 1e-5, false, false, 1,
                List.of(2), "bfloat16");
        assertThat(shapes(c).keySet()).noneMatch(n -> n.contains("q_norm") || n.contains("k_norm"))
                .hasSize(1 + 2 * 9 + 2);
    }
}
