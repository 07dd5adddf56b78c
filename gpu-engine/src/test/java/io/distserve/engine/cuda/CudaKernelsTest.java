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
    void embeddingNormSilu() {
        CudaChecks c = checks();
        c.embeddingAndNorm(300, 136, 29);
        c.siluMul(13, 344);
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
