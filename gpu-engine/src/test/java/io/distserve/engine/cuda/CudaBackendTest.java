package io.distserve.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.distserve.engine.EngineOptions;
import io.distserve.engine.SequenceSlice;
import io.distserve.engine.SequenceSlice.LogitsMode;
import io.distserve.engine.cpu.CpuBackend;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.safetensors.DType;
import io.distserve.engine.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** CudaBackend against CpuBackend (GPU only), and the parts that run everywhere (validation, unavailability). */
class CudaBackendTest {

    @Test
    void sameLogitsAsCpuOnTinyModels() {
        assumeTrue(CudaDevice.isAvailable(), () -> "CUDA unavailable: " + CudaDevice.unavailableReason());
        try (CudaContext ctx = CudaDevice.open()) {
            List<CudaChecks.Result> failures = new ArrayList<>();
            CudaChecks c = new CudaChecks(new CudaKernels(ctx), 42, r -> {
                if (!r.passed()) {
                    failures.add(r);
                }
            });
            c.backendVsCpu("qwen3", TinyModels.qwen3(), 4);
            c.backendVsCpu("llama", TinyModels.llama(), 5);
            c.graphVsEager("qwen3", TinyModels.qwen3(), 4);
            assertThat(failures).isEmpty();
        }
    }

    @Test
    void withoutGpuTheEngineFailsWithOneLine() {
        assumeTrue(!CudaDevice.isAvailable(), "a GPU is present");
        EngineOptions cuda = new EngineOptions("cuda", 64, 0.8, 0, 1, EngineOptions.cpuDefaults().engine());
        ModelConfig c = TinyModels.qwen3();
        assertThatThrownBy(() -> CudaBackend.forEngine(c, TinyModels.randomWeights(c, 1, true), cuda))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("--backend cuda: ")
                .hasMessageNotContaining("\n");
    }

    /** The CUDA step validation rejects exactly what the CPU backend rejects, with the same messages. */
    @Test
    void validatesLikeTheCpuBackend() {
        ModelConfig c = TinyModels.qwen3();
        KvCacheLayout layout = new KvCacheLayout(c.numLayers(), c.numKvHeads(), c.headDim(), 4, 8, DType.BF16);
        try (CpuBackend cpu = CpuBackend.create(c, TinyModels.randomWeights(c, 1, true), 4, 8, 1)) {
            List<List<SequenceSlice>> bad = List.of(
                    List.of(new SequenceSlice(1, new int[0], 0, new int[] {0}, LogitsMode.LAST)),
                    List.of(new SequenceSlice(2, new int[] {1}, -1, new int[] {0}, LogitsMode.LAST)),
                    List.of(new SequenceSlice(3, new int[] {1, 2, 3, 4, 5}, 0, new int[] {0}, LogitsMode.LAST)),
                    List.of(new SequenceSlice(4, new int[] {1}, 0, new int[] {8}, LogitsMode.LAST)),
                    List.of(new SequenceSlice(5, new int[] {300}, 0, new int[] {0}, LogitsMode.LAST)),
                    List.of(new SequenceSlice(6, new int[] {1}, 256, new int[70], LogitsMode.LAST)),
                    java.util.Arrays.asList((SequenceSlice) null));
            for (List<SequenceSlice> batch : bad) {
                Throwable expected = catchIt(() -> cpu.forward(batch));
                Throwable actual = catchIt(() -> CudaStep.of(batch, c, layout));
                assertThat(actual).isNotNull().isInstanceOf(IllegalArgumentException.class)
                        .hasMessage(expected.getMessage());
            }
        }
    }

    @Test
    void stepFlattensSlotsAndTables() {
        ModelConfig c = TinyModels.qwen3();
        KvCacheLayout layout = new KvCacheLayout(c.numLayers(), c.numKvHeads(), c.headDim(), 4, 16, DType.BF16);
        CudaStep s = CudaStep.of(List.of(
                new SequenceSlice(1, new int[] {5, 6, 7, 8, 9}, 0, new int[] {7, 3}, LogitsMode.ALL),
                new SequenceSlice(2, new int[] {4}, 9, new int[] {1, 2, 15}, LogitsMode.LAST)), c, layout);
        assertThat(s.n).isEqualTo(6);
        assertThat(s.slots).containsExactly(28, 29, 30, 31, 12, 15 * 4 + 1);
        assertThat(s.logitRows).containsExactly(0, 1, 2, 3, 4, 5);
        assertThat(s.tableStride).isEqualTo(3);
        assertThat(s.blockTables).containsExactly(7, 3, 0, 1, 2, 15);
    }

    @Test
    void attentionPlanCoversEveryTokenOnce() {
        AttentionPlan p = AttentionPlan.of(new int[] {0, 37, 38}, new int[] {37, 1, 1}, new int[] {0, 300, 5}, 32, 8,
                132, 32);
        assertThat(p.headsPerBlock()).isEqualTo(4);
        assertThat(p.tokensPerItem()).isEqualTo(4);
        int covered = 0;
        for (int i = 0; i < p.items(); i++) {
            covered += p.itemTable()[4 * i + 2];
        }
        assertThat(covered).isEqualTo(39);
        assertThat((long) p.splits() * p.splitLen()).isGreaterThanOrEqualTo(301);
        assertThat(p.splitLen() % CudaKernels.ATTN_KEYS).isZero();
    }

    @Test
    void decodesGoToTheTensorCoreKernelWhenTheyFillTheGpu() {
        // qwen3-8b: 32 heads, 8 KV heads -> 8 attention_prefill blocks per decode; 132 SMs -> from 17 decodes on
        int[] starts = new int[17];
        int[] lens = new int[17];
        int[] pos = new int[17];
        for (int i = 0; i < 17; i++) {
            starts[i] = i;
            lens[i] = 1;
            pos[i] = 100 + 13 * i;
        }
        AttentionPlan eager = AttentionPlan.forStep(starts, lens, pos, 32, 8, 128, 132, 32, 132);
        AttentionPlan graph = AttentionPlan.forDecodeGraph(starts, lens, pos, 32, 8, 128, 132, 32, 132);
        assertThat(eager.items()).isZero();
        assertThat(eager.prefillItems()).isEqualTo(17);
        assertThat(eager.splits()).isEqualTo(1);
        assertThat(graph.itemTable()).containsExactly(eager.itemTable());  // a replay computes the eager step
        assertThat(graph.prefillItems()).isEqualTo(17);
        // 16 decodes (128 blocks) stay on paged_attention with split-KV, as the graphs of that size
        int[] s16 = java.util.Arrays.copyOf(starts, 16);
        int[] l16 = java.util.Arrays.copyOf(lens, 16);
        int[] p16 = java.util.Arrays.copyOf(pos, 16);
        AttentionPlan small = AttentionPlan.forStep(s16, l16, p16, 32, 8, 128, 132, 32, 132);
        AttentionPlan smallGraph = AttentionPlan.forDecodeGraph(s16, l16, p16, 32, 8, 128, 132, 32, 132);
        assertThat(small.prefillItems()).isZero();
        assertThat(small.splits()).isGreaterThan(1);
        assertThat(smallGraph.prefillItems()).isZero();
        assertThat(smallGraph.itemTable()).containsExactly(small.itemTable());
        // a mixed step with 17 decodes: the decodes join the prefill slice on the tensor cores, nothing splits
        int[] ms = java.util.Arrays.copyOf(starts, 18);
        int[] ml = java.util.Arrays.copyOf(lens, 18);
        int[] mp = java.util.Arrays.copyOf(pos, 18);
        ms[17] = 17;
        ml[17] = 40;
        mp[17] = 0;
        AttentionPlan mixed = AttentionPlan.forStep(ms, ml, mp, 32, 8, 128, 132, 32, 132);
        assertThat(mixed.items()).isZero();
        assertThat(mixed.prefillItems()).isEqualTo(17 + 3);
        // head dims without a variant never do
        assertThat(AttentionPlan.forStep(starts, lens, pos, 32, 8, 96, 132, 32, 132).prefillItems()).isZero();
        assertThat(AttentionPlan.forDecodeGraph(starts, lens, pos, 32, 8, 96, 132, 32, 132).prefillItems()).isZero();
    }

    @Test
    void prefillSlicesGoToTheTensorCoreKernelHeaviestFirst() {
        // qwen3-8b heads; slices: 77 tokens from 0, a decode, a 16-token chunk at 130, a 15-token tail at 5
        int[] starts = {0, 77, 78, 94};
        int[] lens = {77, 1, 16, 15};
        int[] pos = {0, 300, 130, 5};
        AttentionPlan p = AttentionPlan.forStep(starts, lens, pos, 32, 8, 128, 132, 32);
        assertThat(p.prefillHeadsPerBlock()).isEqualTo(4);
        assertThat(p.splits()).isEqualTo(1);  // prefill rows have no partials for attention_combine
        int[] covered = new int[94 + 15];
        for (int i = 0; i < p.allItems(); i++) {
            int slice = p.itemTable()[4 * i];
            int tok = p.itemTable()[4 * i + 1];
            int n = p.itemTable()[4 * i + 2];
            assertThat(p.itemTable()[4 * i + 3]).isEqualTo(pos[slice] + tok - starts[slice]);
            assertThat(lens[slice] >= CudaKernels.PREFILL_MIN_TOKENS).isEqualTo(i >= p.items());
            assertThat(n).isLessThanOrEqualTo(i >= p.items() ? 16 : p.tokensPerItem());
            for (int t = tok; t < tok + n; t++) {
                covered[t]++;
            }
        }
        assertThat(covered).containsOnly(1);
        assertThat(p.prefillItems()).isEqualTo(5 + 1);
        int last = Integer.MAX_VALUE;
        for (int i = p.items(); i < p.allItems(); i++) {  // decreasing last position
            int end = p.itemTable()[4 * i + 3] + p.itemTable()[4 * i + 2];
            assertThat(end).isLessThanOrEqualTo(last);
            last = end;
        }
        // no variant for head dim 16, and GQA groups 2 / 3 / 1
        assertThat(AttentionPlan.forStep(starts, lens, pos, 32, 8, 16, 132, 32).prefillItems()).isZero();
        assertThat(CudaKernels.prefillHeadsPerBlock(2)).isEqualTo(2);
        assertThat(CudaKernels.prefillHeadsPerBlock(3)).isEqualTo(1);
        assertThat(CudaKernels.prefillHeadsPerBlock(8)).isEqualTo(4);
        // decode-only steps: the same plan as the decode graphs' (paged_attention, split-KV)
        AttentionPlan d = AttentionPlan.forStep(new int[] {0, 1}, new int[] {1, 1}, new int[] {500, 7}, 32, 8, 128,
                132, 32);
        AttentionPlan g = AttentionPlan.of(new int[] {0, 1}, new int[] {1, 1}, new int[] {500, 7}, 32, 8, 132, 32);
        assertThat(d.prefillItems()).isZero();
        assertThat(d.itemTable()).containsExactly(g.itemTable());
        assertThat(d.splits()).isEqualTo(g.splits()).isGreaterThan(1);
        assertThat(d.splitLen()).isEqualTo(g.splitLen());
    }

    private static Throwable catchIt(Runnable r) {
        try {
            r.run();
            return null;
        } catch (Throwable t) {
            return t;
        }
    }
}
