package io.distserve.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Kernel-level checks on a GPU ({@link CudaChecks}); skipped where CUDA is unavailable (CI, laptops). */
class CudaKernelsTest {

    private static CudaContext ctx;
    private static CudaKernels kernels;
    private final List<CudaChecks.Result> failures = new ArrayList<>();

    @BeforeAll
    static void open() {
        if (CudaDevice.isAvailable()) {
            ctx = CudaDevice.open();
            kernels = new CudaKernels(ctx);
        }
    }

    @AfterAll
    static void close() {
        if (ctx != null) {
            ctx.close();
        }
    }

    private CudaChecks checks() {
        assumeTrue(CudaDevice.isAvailable(), () -> "CUDA unavailable: " + CudaDevice.unavailableReason());
        return new CudaChecks(kernels, System.nanoTime(), r -> {
            if (!r.passed()) {
                failures.add(r);
            }
        });
    }

    @Test
    void gemmAtOddSizes() {
        CudaChecks c = checks();
        c.gemm(77, 131, 200, true);
        c.gemm(1, 1000, 64, true);
        c.gemm(130, 70, 264, false);
        assertThat(failures).isEmpty();
    }

    @Test
    void wgmmaGemmAtOddSizes() {
        CudaChecks c = checks();
        assumeTrue(kernels.wgmmaAvailable(), () -> "wgmma GEMM unavailable: " + kernels.wgmmaUnavailableReason());
        c.wgmmaGemm(false);
        assertThat(failures).isEmpty();
    }

    @Test
    void skinnyGemmForEveryDecodeVariant() {
        CudaChecks c = checks();
        c.gemmSkinny(1, 1000, 200, true);
        c.gemmSkinny(3, 77, 1032, false);
        c.gemmSkinny(9, 333, 520, false);
        c.gemmSkinny(16, 47, 2056, true);
        c.gemmSkinny(32, 250, 1000, true);
        assertThat(failures).isEmpty();
    }

    @Test
    void splitGemmEveryOutputAndSlicing() {
        CudaChecks c = checks();
        c.gemmSplit(17, 1013, 4104, false, 0);
        c.gemmSplit(29, 1013, 136, true, 0);
        c.gemmSplit(32, 1013, 4104, true, 2);
        c.gemmSplit(29, 1013, 4104, false, 4);
        c.gemmSplit(17, 1013, 136, true, 8);
        c.gemm(32, 1013, 4104, true);
        assertThat(failures).isEmpty();
    }

    @Test
    void splitGemmPlanForQwen3Shapes() {
        // runs everywhere (host arithmetic only): the K slicing and shared memory of the split GEMM on 132 SMs
        assertThat(CudaKernels.splitSlices(24576, 4096, 132)).isEqualTo(4);    // gate|up: 768 blocks
        assertThat(CudaKernels.splitSlices(151936, 4096, 132)).isEqualTo(4);   // lm_head
        assertThat(CudaKernels.splitSlices(6144, 4096, 132)).isEqualTo(8);     // qkv: 384 blocks
        assertThat(CudaKernels.splitSlices(4096, 4096, 132)).isEqualTo(8);     // o_proj: 256 blocks
        assertThat(CudaKernels.splitSlices(4096, 12288, 132)).isEqualTo(8);    // down: 48 chunks per slice
        assertThat(CudaKernels.splitSlices(1013, 136, 132)).isEqualTo(1);      // 5 chunks: not split
        assertThat(CudaKernels.splitChunksPerSlice(4096, 4)).isEqualTo(32);
        assertThat(CudaKernels.splitChunksPerSlice(4104, 8)).isEqualTo(17);
        assertThat(CudaKernels.splitChunksPerSlice(12288, 8)).isEqualTo(48);
        // one 16-chunk segment of 32 tokens (32 KB), else the 32 x 132 fp32 partial tile
        assertThat(CudaKernels.splitSharedBytes(32)).isEqualTo(32 * 1024);
        assertThat(CudaKernels.splitSharedBytes(5)).isEqualTo(32 * 132 * 4);
        for (int k = 8; k <= 20_000; k += 8) {
            for (int n : new int[] {1, 77, 1013, 4096, 24576, 151_936}) {
                int s = CudaKernels.splitSlices(n, k, 132);
                assertThat(s).isIn(1, 2, 4, 8);
                int cps = CudaKernels.splitChunksPerSlice(k, s);
                assertThat((long) cps * s).isGreaterThanOrEqualTo((k + 31) / 32);
                assertThat(CudaKernels.splitSharedBytes(cps)).isLessThanOrEqualTo(48 * 1024);
            }
        }
    }

    @Test
    void decode32VariantsEveryOutputAndSlicing() {
        CudaChecks c = checks();
        c.gemmDual(17, 1013, 4104, false);
        c.gemmDual(29, 1013, 136, true);
        c.gemmDual(29, 77, 72, true);
        c.gemmPipe(17, 1013, 4104, true, 1);
        c.gemmPipe(29, 1013, 4104, false, 2);
        c.gemmPipe(32, 1013, 4104, true, 4);
        c.gemmPipe(17, 1013, 136, false, 8);
        c.gemmPipe(24, 77, 72, false, 4);
        assertThat(failures).isEmpty();
    }

    @Test
    void decode32TunerPicksAndTheDispatchFollows() {
        CudaChecks c = checks();
        CudaKernels.Gemm32Tuning t = kernels.tuneDecode32Scratch("test", 1013, 4104, true);
        assertThat(t.micros()).containsKey(t.choice());
        assertThat(kernels.decode32Choice(1013, 4104, true)).isEqualTo(t.choice());
        c.gemm(29, 1013, 4104, true);   // the dispatch now runs the pick
        assertThat(failures).isEmpty();
    }

    @Test
    void decodeCandidatesBelow17() {
        CudaChecks c = checks();
        c.gemmSkinnyWarps(1, 1013, 4104, true, 4);
        c.gemmSkinnyWarps(5, 1013, 136, false, 16);
        c.gemmSkinnyWarps(13, 1013, 4104, false, 8);
        c.gemmDual(1, 1013, 4104, false);
        c.gemmDual(8, 1013, 136, true);
        c.gemmDual(13, 1013, 4104, true);
        c.gemmSplit(1, 1013, 4104, true, 8);
        c.gemmSplit(16, 1013, 136, false, 4);
        c.gemmPipe(1, 1013, 136, false, 2);
        c.gemmPipe(5, 1013, 4104, true, 8);
        c.gemmPipe(16, 1013, 4104, false, 1);
        assertThat(failures).isEmpty();
    }

    @Test
    void decodeTunerEveryBucketAndTheDispatchFollows() {
        CudaChecks c = checks();
        List<CudaKernels.Gemm32Tuning> ts = kernels.tuneDecodeScratch(List.of(0, 1, 2, 3), "test", 1013, 4104,
                false);
        assertThat(ts).hasSize(4);
        int[] ms = {1, 8, 16, 32};
        for (int b = 0; b < 4; b++) {
            assertThat(ts.get(b).tuneM()).isEqualTo(ms[b]);
            assertThat(kernels.decodeChoice(ms[b], 1013, 4104, false)).isEqualTo(ts.get(b).choice());
        }
        c.gemm(1, 1013, 4104, false);
        c.gemm(5, 1013, 4104, false);
        c.gemm(13, 1013, 4104, false);
        assertThat(failures).isEmpty();
    }

    @Test
    void decode32PlanAndForcedProperty() {
        // host arithmetic only: the pipe GEMM's heuristic slicing on 132 SMs, the -Ddistserve.cuda.gemm32 parser
        assertThat(CudaKernels.pipeSlices(24576, 4096, 132)).isEqualTo(2);    // gate|up: 384 blocks
        assertThat(CudaKernels.pipeSlices(6144, 4096, 132)).isEqualTo(8);     // qkv: 384 blocks
        assertThat(CudaKernels.pipeSlices(4096, 4096, 132)).isEqualTo(8);     // o_proj: 256 blocks
        assertThat(CudaKernels.pipeSlices(4096, 12288, 132)).isEqualTo(8);    // down
        assertThat(CudaKernels.pipeSlices(151936, 4096, 132)).isEqualTo(1);   // lm_head: 1,187 blocks
        assertThat(CudaKernels.pipeSlices(1013, 136, 132)).isEqualTo(1);      // 5 chunks: not split
        for (int k = 8; k <= 20_000; k += 8) {
            for (int n : new int[] {1, 77, 1013, 4096, 24576, 151_936}) {
                assertThat(CudaKernels.pipeSlices(n, k, 132)).isIn(1, 2, 4, 8);
            }
        }
        assertThat(CudaKernels.dualSharedBytes(8)).isEqualTo(8 * 32 * 33 * 4);
        assertThat(CudaKernels.PIPE_SHARED).isEqualTo(32 * 1024);
        assertThat(CudaKernels.parseGemm32(null)).isNull();
        assertThat(CudaKernels.parseGemm32("pipe").toString()).isEqualTo("pipe S=auto");
        assertThat(CudaKernels.parseGemm32("split:4").toString()).isEqualTo("split S=4");
        assertThat(CudaKernels.parseGemm32("Dual").toString()).isEqualTo("dual");
        assertThat(CudaKernels.parseGemm32("skinny").variant()).isEqualTo(CudaKernels.Gemm32Variant.SKINNY);
        assertThat(CudaKernels.parseGemm32("skinny").toString()).isEqualTo("skinny");
        assertThat(CudaKernels.parseDecodeChoice("distserve.cuda.gemm8", "skinny:16").toString())
                .isEqualTo("skinny W=16");
        assertThat(CudaKernels.decodeBucket(1)).isEqualTo(0);
        assertThat(CudaKernels.decodeBucket(2)).isEqualTo(1);
        assertThat(CudaKernels.decodeBucket(8)).isEqualTo(1);
        assertThat(CudaKernels.decodeBucket(9)).isEqualTo(2);
        assertThat(CudaKernels.decodeBucket(16)).isEqualTo(2);
        assertThat(CudaKernels.decodeBucket(17)).isEqualTo(3);
        assertThat(CudaKernels.decodeBucket(32)).isEqualTo(3);
        assertThat(CudaKernels.bucketRange(1)).isEqualTo("2..8");
        assertThat(CudaKernels.bucketRange(0)).isEqualTo("1");
        for (String bad : new String[] {"pipe:3", "dual:2", "wgmma", "split:16", "pipe:x", "pipe:2:2", "skinny:3",
                "skinny:32", "skinny:x"}) {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> CudaKernels.parseGemm32(bad))
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void embeddingNormSilu() {
        CudaChecks c = checks();
        c.embeddingAndNorm(300, 136, 29);
        c.siluMul(13, 344);
        c.gemmSiluFused(344, 1016, new int[] {1, 5, 8, 13, 16, 29, 32},
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 4),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.DUAL, 0));
        c.gemmNormFused(1000, 1016, new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 4),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.DUAL, 0));
        assertThat(failures).isEmpty();
    }

    @Test
    void qkNormRopeAndPagedKvWrite() {
        CudaChecks c = checks();
        c.qkNormRopeKvWrite(4, 2, 16, 4, true);
        c.qkNormRopeKvWrite(6, 2, 128, 16, false);
        c.qkNormRopeKvWrite(8, 1, 256, 64, true);
        assertThat(failures).isEmpty();
    }

    @Test
    void pagedAttentionWithAndWithoutSplits() {
        CudaChecks c = checks();
        c.attention(4, 2, 16, 4, 0);
        c.attention(8, 2, 128, 16, 5);
        c.attention(6, 3, 64, 7, 3);
        c.attention(32, 1, 256, 64, 0);
        c.attention(8, 2, 128, 16, 0, true);
        assertThat(failures).isEmpty();
    }

    @Test
    void tensorCorePrefillAttention() {
        CudaChecks c = checks();
        c.attentionPrefill(32, 8, 128, 64, new int[] {77}, new int[] {0});
        c.attentionPrefill(16, 16, 64, 7, new int[] {50, 33}, new int[] {130, 5});
        c.attentionPrefill(8, 1, 128, 5, new int[] {77, 20}, new int[] {0, 130});
        c.attentionPrefill(8, 4, 128, 16, new int[] {70, 1, 20, 1, 5}, new int[] {0, 300, 64, 7, 9});
        assertThat(failures).isEmpty();
    }

    @Test
    void argmax() {
        CudaChecks c = checks();
        c.argmax(7, 1001);
        assertThat(failures).isEmpty();
    }

    @Test
    void availabilityNeverThrowsAndExplains() {
        // runs everywhere: on a machine without a GPU this is the one-line reason the engine prints
        String why = CudaDevice.unavailableReason();
        assertThat(CudaDevice.isAvailable()).isEqualTo(why == null);
        if (why != null) {
            assertThat(why).doesNotContain("\n");
        }
    }
}
