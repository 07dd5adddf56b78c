package io.distserve.engine.cuda;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Typed launchers of the fatbin's kernels (src/main/cuda): one method per kernel, with the launch geometry the
 * kernel expects. The backend and the self-check both go through here, so what the check verifies is what the
 * backend runs. Pointers are {@link CUdeviceptr} (or {@link DeviceBuffer}); {@code null} means "none" where the
 * kernel accepts it.
 */
public final class CudaKernels {

    /** Query tokens x heads of one attention block (must match RMAX in attention.cu). */
    static final int ATTN_ROWS = 16;
    /** Keys per attention tile (KT in attention.cu). */
    static final int ATTN_KEYS = 32;
    /**
     * Slices of at least this many query tokens run on the tensor-core prefill attention (attention_prefill.cu):
     * one full 16-row mma strip per warp. Shorter slices (decodes, a chunk's few-token tail) stay on
     * paged_attention, which packs 16 rows of (tokens x heads) per block and can split long contexts over the SMs.
     */
    static final int PREFILL_MIN_TOKENS = 16;
    /** Query rows (tokens x heads) of one attention_prefill block (FA_ROWS in attention_prefill.cu). */
    static final int PREFILL_ROWS = 64;
    /** Keys per attention_prefill tile (FA_KT in attention_prefill.cu). */
    static final int PREFILL_KEYS = 64;
    /** Output tile of the GEMM (BM, BN in gemm.cu). */
    static final int GEMM_TILE = 64;
    /** Largest M (token rows) that {@link #gemm} sends to the weight-streaming skinny GEMM (gemm_skinny.cu). */
    static final int SKINNY_MAX_M = 32;
    /** Weight rows per skinny-GEMM block (SK_ROWS in gemm_skinny.cu). */
    static final int SKINNY_ROWS = 16;
    /** Output tile of the wgmma GEMM (kTileM x kTileN in gemm_wgmma.cu). */
    static final int WGMMA_TILE_M = 128;
    static final int WGMMA_TILE_N = 256;
    /** Its threads (3 warpgroups) and dynamic shared memory: 4 stages x (128 + 256) rows x 64 bf16, + 1 KB slack. */
    static final int WGMMA_THREADS = 384;
    static final int WGMMA_SHARED = 4 * (WGMMA_TILE_M + WGMMA_TILE_N) * 64 * 2 + 1024;
    /** {@code -Ddistserve.cuda.wgmma=false} keeps the wgmma GEMM off (the dispatch falls back to gemm.cu). */
    static final boolean WGMMA_ENABLED = !"false".equalsIgnoreCase(System.getProperty("distserve.cuda.wgmma"));
    /** Largest M of the split GEMM (gemm_split.cu, TOK). */
    static final int SPLIT_MAX_M = 32;
    /** Weight rows per split-GEMM block (SP_ROWS), its threads, chunks per staged A segment (SP_SEG), UNROLL. */
    static final int SPLIT_ROWS = 128;
    static final int SPLIT_THREADS = 256;
    static final int SPLIT_SEG = 16;
    static final int SPLIT_UNROLL = 4;
    /** Floats per token row of the split GEMM's partial tile (SP_LDP). */
    static final int SPLIT_LDP = SPLIT_ROWS + 4;
    /** Most K slices (blocks per cluster) of the split GEMM: 8, the portable cluster size. */
    static final int SPLIT_MAX_SLICES = 8;
    /**
     * Smallest M that {@link #gemm} sends to the split GEMM (up to {@link #SPLIT_MAX_M}); below it, the skinny GEMM.
     * {@code -Ddistserve.cuda.splitMinM=9} would try it for 9..16 too; 33 turns it off.
     */
    static final int SPLIT_MIN_M = Math.max(1, Math.min(SPLIT_MAX_M + 1,
            Integer.getInteger("distserve.cuda.splitMinM", 17)));

    /** Weight rows per gemm_dual32 block (D32_ROWS) and its rolling slots per lane (D32_UNROLL). */
    static final int DUAL_ROWS = 32;
    static final int DUAL_UNROLL = 2;
    /** Weight rows per gemm_pipe32 block (P32_ROWS), its threads, and its chunks per A segment (2 U, U = 4). */
    static final int PIPE_ROWS = 128;
    static final int PIPE_THREADS = 256;
    static final int PIPE_SEG = 8;
    /** gemm_pipe32's dynamic shared memory: two A segment buffers of 8 chunks x 32 tokens x 64 bytes. */
    static final int PIPE_SHARED = 2 * PIPE_SEG * 32 * 64;
    /** Smallest M of the tuned decode bucket (17..32 -> tuned at 32, {@link #tuneDecodeAll}). */
    static final int DECODE32_MIN_M = 17;
    /** Token rows the tuner times with (the bucket's largest M: batch-32 decode). */
    static final int DECODE32_TUNE_M = 32;
    /**
     * {@code -Ddistserve.cuda.gemm32=skinny|split|pipe|dual[:S]}: M 17..32 always run that kernel (the tuner then
     * times only its K slicings, or none with ":S"); unset: the tuner's pick per shape.
     */
    static final String GEMM32_PROPERTY = "distserve.cuda.gemm32";
    /**
     * The tuned decode buckets (CUDA_NOTES section 9): M 1, 2..8, 9..16, 17..32, each tuned per weight shape at its
     * largest M (1, 8, 16, 32) and run on the pick for every M of the bucket.
     */
    static final int[] DECODE_BUCKET_M = {1, 8, 16, 32};
    /**
     * {@code -Ddistserve.cuda.gemm1|gemm8|gemm16|gemm32=skinny[:W]|dual|split[:S]|pipe[:S]}: that bucket always runs
     * that kernel (W warps per block 4, 8 or 16; S K slices 1, 2, 4, 8; without ":W"/":S" the tuner picks it).
     */
    static final String[] DECODE_BUCKET_PROPERTY = {"distserve.cuda.gemm1", "distserve.cuda.gemm8",
            "distserve.cuda.gemm16", GEMM32_PROPERTY};
    /** Warps per block the tuner tries for the skinny GEMM (its __launch_bounds__(512) allows up to 16). */
    static final int[] SKINNY_WARPS = {4, 8, 16};

    private static final Logger LOG = LoggerFactory.getLogger(CudaKernels.class);

    private final CudaContext ctx;
    private final Kernel embedding;
    private final Kernel addRmsNorm;
    private final Kernel siluMul;
    private final Kernel qkRopeKv;
    private final Kernel gemmBf16;
    private final Kernel gemmF32;
    private final Kernel gemm128Bf16;
    private final Kernel gemm128F32;
    /** gemm_wgmma_bf16_{bf16,f32}: null when not usable here ({@link #wgmmaUnavailableReason}). */
    private final Kernel wgmmaBf16;
    private final Kernel wgmmaF32;
    private final String wgmmaOff;
    /** {@link #NORM_FUSE_PROPERTY}, read once. */
    private final boolean normFuse = !"false".equalsIgnoreCase(System.getProperty(NORM_FUSE_PROPERTY));
    private final Kernel attention;
    private final Kernel prefill64;
    private final Kernel prefill128;
    private final Kernel argmax;
    private final Kernel spin;
    private final Kernel sample;
    private final Kernel penalty;
    /** gemm_skinny{8,16,32}_{bf16,f32}: index 0, 1, 2 for M <= 8, 16, 32. */
    private final Kernel[] skinnyBf16 = new Kernel[3];
    private final Kernel[] skinnyF32 = new Kernel[3];
    /** gemm_skinny{8,16,32}_silu: the gate|up GEMM with the activation in its epilogue. */
    private final Kernel[] skinnySilu = new Kernel[3];
    /** gemm_skinny8_f32_norm, gemm_dual32_f32_norm: o_proj / down_proj with the add + RMSNorm after them. */
    private final Kernel skinnyNorm;
    private final Kernel dualNorm;
    /** gemm_split32_s{1,2,4,8}_{bf16,f32}: index log2(S). */
    private final Kernel[] splitBf16 = new Kernel[4];
    private final Kernel[] splitF32 = new Kernel[4];
    /** gemm_dual32_{bf16,f32}. */
    private final Kernel dualBf16;
    private final Kernel dualF32;
    private final Kernel dualSilu;
    /** gemm_pipe32_u4_s{1,2,4,8}_{bf16,f32}: index log2(S). */
    private final Kernel[] pipeBf16 = new Kernel[4];
    private final Kernel[] pipeF32 = new Kernel[4];
    /** Why a cluster launch of the split GEMM was refused (then it runs with S = 1), or null. */
    private final String clusterRefusal;
    /** {@link #DECODE_BUCKET_PROPERTY}, parsed, per bucket; null when unset. */
    private final Gemm32Choice[] forced = new Gemm32Choice[DECODE_BUCKET_M.length];
    /**
     * The tuner's picks by (bucket, N, K, fp32 out); read by {@link #gemm} (any thread), written by the tuner.
     */
    private final Map<Gemm32Key, Gemm32Tuning> tuned32 = new ConcurrentHashMap<>();

    public CudaKernels(CudaContext ctx) {
        this.ctx = ctx;
        embedding = ctx.kernel("embedding_gather");
        addRmsNorm = ctx.kernel("add_rmsnorm");
        siluMul = ctx.kernel("silu_mul");
        qkRopeKv = ctx.kernel("qk_norm_rope_kv_write");
        gemmBf16 = ctx.kernel("gemm_bf16_bf16");
        gemmF32 = ctx.kernel("gemm_bf16_f32");
        gemm128Bf16 = ctx.kernel("gemm128_bf16_bf16");
        gemm128F32 = ctx.kernel("gemm128_bf16_f32");
        Kernel wb = null;
        Kernel wf = null;
        String off = null;
        if (!WGMMA_ENABLED) {
            off = "disabled by -Ddistserve.cuda.wgmma=false";
        } else if (!ctx.isSm90()) {
            off = "needs compute capability 9.0 (sm_90a code), the device is " + ctx.computeCapability();
        } else if (ctx.maxSharedPerBlockOptin() < WGMMA_SHARED) {
            off = "needs " + WGMMA_SHARED + " bytes of shared memory per block, the device allows "
                    + ctx.maxSharedPerBlockOptin();
        } else {
            try {
                wb = ctx.kernel("gemm_wgmma_bf16_bf16");
                wf = ctx.kernel("gemm_wgmma_bf16_f32");
            } catch (CudaException e) {
                wb = null;
                wf = null;
                off = "not in the fatbin: " + e.getMessage();
            }
        }
        wgmmaBf16 = wb;
        wgmmaF32 = wf;
        wgmmaOff = off;
        attention = ctx.kernel("paged_attention");
        prefill64 = ctx.kernel("attention_prefill_hd64");
        prefill128 = ctx.kernel("attention_prefill_hd128");
        argmax = ctx.kernel("argmax_rows");
        spin = ctx.kernel("gpu_spin");
        sample = ctx.kernel("sample_rows");
        penalty = ctx.kernel("repetition_penalty");
        for (int i = 0; i < 3; i++) {
            skinnyBf16[i] = ctx.kernel("gemm_skinny" + (8 << i) + "_bf16");
            skinnyF32[i] = ctx.kernel("gemm_skinny" + (8 << i) + "_f32");
            skinnySilu[i] = ctx.kernel("gemm_skinny" + (8 << i) + "_silu");
        }
        for (int i = 0; i < 4; i++) {
            splitBf16[i] = ctx.kernel("gemm_split32_s" + (1 << i) + "_bf16");
            splitF32[i] = ctx.kernel("gemm_split32_s" + (1 << i) + "_f32");
            // three blocks of 33 KB per SM: ask for the largest shared-memory carveout (L1 holds nothing of theirs:
            // weights bypass it, activations go through shared memory)
            for (Kernel kern : new Kernel[] {splitBf16[i], splitF32[i]}) {
                kern.setAttribute(CUfunction_attribute.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100);
            }
        }
        dualBf16 = ctx.kernel("gemm_dual32_bf16");
        dualF32 = ctx.kernel("gemm_dual32_f32");
        dualSilu = ctx.kernel("gemm_dual32_silu");
        skinnyNorm = ctx.kernel("gemm_skinny8_f32_norm");
        dualNorm = ctx.kernel("gemm_dual32_f32_norm");
        for (int i = 0; i < 4; i++) {
            pipeBf16[i] = ctx.kernel("gemm_pipe32_u4_s" + (1 << i) + "_bf16");
            pipeF32[i] = ctx.kernel("gemm_pipe32_u4_s" + (1 << i) + "_f32");
            for (Kernel kern : new Kernel[] {pipeBf16[i], pipeF32[i]}) {
                kern.setAttribute(CUfunction_attribute.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100);
            }
        }
        for (int b = 0; b < DECODE_BUCKET_M.length; b++) {
            forced[b] = parseDecodeChoice(DECODE_BUCKET_PROPERTY[b], System.getProperty(DECODE_BUCKET_PROPERTY[b]));
        }
        clusterRefusal = probeClusterLaunch();
        if (clusterRefusal != null) {
            System.err.println("distserve cuda: cluster launch of the split GEMM refused, K is not split for M in "
                    + SPLIT_MIN_M + ".." + SPLIT_MAX_M + ": " + clusterRefusal);
        }
    }

    /**
     * One tiny launch of a 2-block-cluster kernel (gemm_split32_s2_bf16 at M 17, N 1, K 8), synchronized: the
     * kernels carry their cluster size as a compile-time attribute (__cluster_dims__) and are launched with plain
     * cuLaunchKernel (JCuda has no cuLaunchKernelEx). Should the driver refuse, the split GEMM runs unsplit (S = 1,
     * no cluster) rather than fail inside a graph capture. @return null when fine, else the error
     */
    private String probeClusterLaunch() {
        try (DeviceBuffer a = ctx.allocate("split_probe_a", 2 * 17 * 8);
             DeviceBuffer w = ctx.allocate("split_probe_w", 2 * 8);
             DeviceBuffer c = ctx.allocate("split_probe_c", 2 * 18)) {
            a.fill32(0);
            w.fill32(0);
            splitBf16[1].launch(2, 1, 1, SPLIT_THREADS, splitSharedBytes(1), a, w, c, 17, 1, 8, 8, 8, 1, 1);
            ctx.synchronize();
            return null;
        } catch (CudaException e) {
            return e.getMessage();
        }
    }

    /** Null when the split GEMM's cluster launches work (K split across blocks), else why not. */
    public String clusterRefusal() {
        return clusterRefusal;
    }

    /**
     * The cluster width the driver reads off each split kernel (its __cluster_dims__): "0/2/4/8" when as built (S = 1
     * has no cluster attribute).
     */
    public String splitClusterWidths() {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 4; i++) {
            b.append(i == 0 ? "" : "/").append(splitBf16[i].attribute(
                    CUfunction_attribute.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH));
        }
        return b.toString();
    }

    public CudaContext context() {
        return ctx;
    }

    /** Every kernel, for the resource table. */
    public Kernel[] all() {
        List<Kernel> all = new ArrayList<>(List.of(embedding, addRmsNorm, siluMul, qkRopeKv, gemmBf16, gemmF32,
                gemm128Bf16, gemm128F32, attention, prefill64, prefill128, argmax, sample, penalty));
        if (wgmmaBf16 != null) {
            all.add(wgmmaBf16);
            all.add(wgmmaF32);
        }
        all.addAll(Arrays.asList(skinnyBf16));
        all.addAll(Arrays.asList(skinnyF32));
        all.addAll(Arrays.asList(skinnySilu));
        all.addAll(Arrays.asList(splitBf16));
        all.addAll(Arrays.asList(splitF32));
        all.add(dualBf16);
        all.add(dualF32);
        all.add(dualSilu);
        all.add(skinnyNorm);
        all.add(dualNorm);
        all.addAll(Arrays.asList(pipeBf16));
        all.addAll(Arrays.asList(pipeF32));
        return all.toArray(new Kernel[0]);
    }

    /** Largest hidden size add_rmsnorm holds in registers: 256 threads x RMS_VECS (8) float4 (elementwise.cu). */
    static final int RMS_MAX_HIDDEN = 256 * 4 * 8;

    /** {@code x[t] = float(table[tokens[t]])}; hidden % 8 == 0. */
    public void embedding(Object table, Object tokens, Object x, int n, int hidden) {
        embedding.launch(n, 1, 1, 128, 0, table, tokens, x, hidden);
    }

    /**
     * For r in [0, rows): s = rowIdx == null ? r : rowIdx[r]; v = x[s] (+ delta[s]); when writeBack x[s] = v;
     * out[r] = bf16(rmsnorm(v) * w). hidden % 8 == 0.
     */
    public void addRmsNorm(Object x, Object delta, Object w, Object out, Object rowIdx, int rows, int hidden,
                           float eps, boolean writeBack) {
        if (hidden % 8 != 0 || hidden > RMS_MAX_HIDDEN) {
            throw new IllegalArgumentException("add_rmsnorm: hidden size must be a multiple of 8 and at most "
                    + RMS_MAX_HIDDEN + ", got " + hidden);
        }
        addRmsNorm.launch(rows, 1, 1, 256, 0, x, delta, w, out, rowIdx, hidden, eps, writeBack ? 1 : 0);
    }

    /**
     * act[t, i] = silu(gate[t, i]) * up[t, i] for gu = the output of the interleaved gate|up weight
     * ({@link #interleavedGateUpRow}): [gate 8 features | up 8 features] per 16 columns; inter % 8 == 0.
     */
    public void siluMul(Object gateUp, Object act, int n, int inter) {
        long vecs = (long) n * (inter / 8);
        siluMul.launch((int) ((vecs + 255) / 256), 1, 1, 256, 0, gateUp, act, n, inter);
    }

    /** q/k RMSNorm (norm weights may be null) + RoPE, q to qOut, k and v into the paged cache at slots[t]. */
    public void qkNormRopeKvWrite(Object qkv, Object qOut, Object cache, Object positions, Object slots, Object qNorm,
                                  Object kNorm, Object cos, Object sin, int n, int heads, int kvHeads, int headDim,
                                  int layer, int numLayers, int blockSize, float eps) {
        int warpsPerBlock = 4;
        qkRopeKv.launch(n, (heads + 2 * kvHeads + warpsPerBlock - 1) / warpsPerBlock, 1, 32 * warpsPerBlock, 0, qkv, qOut, cache, positions, slots, qNorm, kNorm, cos, sin, heads, kvHeads,
                headDim, layer, numLayers, blockSize, eps);
    }

    /**
     * act[M, inter] = silu(xn . gate^T) * (xn . up^T) for the gate|up weight interleaved by {@link #interleavedGateUpRow}
     * (2 inter rows, K columns). Decode-sized M whose pick (the tuner's, for the 2 inter x K shape) is the skinny or
     * the dual GEMM runs it with the activation in the GEMM's epilogue (gemm_skinny*_silu, gemm_dual32_silu): one
     * launch, no gate|up round trip through memory. Otherwise the GEMM writes {@code gateUp} and silu_mul follows.
     * Both give the same bits (the epilogue rounds gate and up to bf16 first, as the stored gate|up is).
     *
     * @param gateUp [M, 2 inter] bf16 scratch for the unfused path
     */
    public void gemmSiluMul(Object xn, Object w, Object gateUp, Object act, int m, int inter, int k) {
        if (m >= 1 && m <= SKINNY_MAX_M) {
            Gemm32Choice c = decodeChoice(m, 2 * inter, k, false);
            if (c.variant() == Gemm32Variant.SKINNY || c.variant() == Gemm32Variant.DUAL) {
                gemmSiluFused(c, xn, w, act, m, inter, k);
                return;
            }
        }
        gemm(xn, w, gateUp, m, 2 * inter, k, false);
        siluMul(gateUp, act, m, inter);
    }

    /**
     * delta[M, hidden] = a . w^T (fp32), then x += delta and xn = rmsnorm(x) * normW: the o_proj / down_proj of a
     * layer and the add + RMSNorm that follows. A decode step of {@link #NORM_FUSE_MAX_M} token(s) whose pick for the
     * shape is the skinny or the dual GEMM runs both in one launch: the grid's last block does the norm
     * (norm_tail in common.cuh, counting blocks in {@code counter}: one int, zero before the first launch, left
     * zero by every launch), when its blocks still fit the GPU in one wave with the tail's registers
     * ({@link #normFusable}). Otherwise the GEMM, then add_rmsnorm.
     */
    public void gemmAddRmsNorm(Object a, Object w, Object delta, int m, int hidden, int k, Object x, Object normW,
                               Object xn, float eps, Object counter) {
        if (m >= 1 && m <= NORM_FUSE_MAX_M && normFuse) {
            Gemm32Choice c = decodeChoice(m, hidden, k, true);
            if (normFusable(c, hidden, k)) {
                gemmNormFused(c, a, w, delta, m, hidden, k, x, normW, xn, eps, counter);
                return;
            }
        }
        gemm(a, w, delta, m, hidden, k, true);
        addRmsNorm(x, delta, normW, xn, null, m, hidden, eps, true);
    }

    /** Tokens up to which {@link #gemmAddRmsNorm} fuses (the tail block normalizes the rows one after another). */
    public static final int NORM_FUSE_MAX_M = 1;
    /** {@code -Ddistserve.cuda.normFuse=false}: o_proj / down_proj and add_rmsnorm as two launches at every M. */
    public static final String NORM_FUSE_PROPERTY = "distserve.cuda.normFuse";

    /**
     * Whether the choice has a norm-tail kernel (skinny, dual), whose block can hold a row in registers
     * (hidden <= 32 x threads), and whose grid still runs in one wave with the tail's registers.
     */
    boolean normFusable(Gemm32Choice c, int hidden, int k) {
        Kernel kernel;
        int threads;
        int blocks;
        if (c.variant() == Gemm32Variant.SKINNY) {
            kernel = skinnyNorm;
            threads = 32 * skinnyWarps(hidden, k, c.slices());
            blocks = (hidden + SKINNY_ROWS - 1) / SKINNY_ROWS;
        } else if (c.variant() == Gemm32Variant.DUAL) {
            kernel = dualNorm;
            threads = 32 * dualWarps(k);
            blocks = (hidden + DUAL_ROWS - 1) / DUAL_ROWS;
        } else {
            return false;
        }
        if (hidden % 8 != 0 || hidden > 32 * threads) {
            return false;
        }
        int regs = Math.max(1, (kernel.registers() + 7) / 8 * 8);
        long perSm = 65536L / ((long) regs * threads);
        return perSm * ctx.smCount() >= blocks;
    }

    /** The fused GEMM + add + RMSNorm on the skinny (M <= 8; the choice's warps) or the dual kernel. */
    public void gemmNormFused(Gemm32Choice c, Object a, Object w, Object delta, int m, int hidden, int k, Object x,
                              Object normW, Object xn, float eps, Object counter) {
        checkGemm("gemm (+ add_rmsnorm)", k, k, k);
        if (m < 1 || m > 8) {
            throw new IllegalArgumentException("gemm (+ add_rmsnorm): M must be in [1, 8], got " + m);
        }
        if (c.variant() == Gemm32Variant.DUAL) {
            int warps = dualWarps(k);
            dualNorm.launch((hidden + DUAL_ROWS - 1) / DUAL_ROWS, 1, 1, 32 * warps, dualSharedBytes(warps), a, w,
                    delta, m, hidden, k, k, k, hidden, x, normW, xn, counter, eps);
        } else if (c.variant() == Gemm32Variant.SKINNY) {
            int warps = skinnyWarps(hidden, k, c.slices());
            skinnyNorm.launch((hidden + SKINNY_ROWS - 1) / SKINNY_ROWS, 1, 1, 32 * warps, skinnySharedBytes(warps, 0),
                    a, w, delta, m, hidden, k, k, k, hidden, x, normW, xn, counter, eps);
        } else {
            throw new IllegalArgumentException("gemm (+ add_rmsnorm): no fused " + c.variant() + " kernel");
        }
    }

    /** The fused gate|up + activation GEMM on the skinny (with the choice's warps) or the dual kernel. */
    public void gemmSiluFused(Gemm32Choice c, Object xn, Object w, Object act, int m, int inter, int k) {
        checkGemm("gemm (gate|up + silu)", k, k, k);
        if (m < 1 || m > SKINNY_MAX_M || inter % GATE_GROUP != 0) {
            throw new IllegalArgumentException("gemm (gate|up + silu): M must be in [1, " + SKINNY_MAX_M
                    + "] and inter a multiple of " + GATE_GROUP + ", got M=" + m + " inter=" + inter);
        }
        int n = 2 * inter;
        if (c.variant() == Gemm32Variant.DUAL) {
            int warps = dualWarps(k);
            dualSilu.launch((n + DUAL_ROWS - 1) / DUAL_ROWS, 1, 1, 32 * warps, dualSharedBytes(warps), xn, w, act, m,
                    n, k, k, k, inter);
        } else if (c.variant() == Gemm32Variant.SKINNY) {
            int warps = skinnyWarps(n, k, c.slices());
            int variant = skinnyVariant(m);
            skinnySilu[variant].launch((n + SKINNY_ROWS - 1) / SKINNY_ROWS, 1, 1, 32 * warps,
                    skinnySharedBytes(warps, variant), xn, w, act, m, n, k, k, k, inter);
        } else {
            throw new IllegalArgumentException("gemm (gate|up + silu): no fused " + c.variant() + " kernel");
        }
    }

    /** Rows of a gate or an up group in the interleaved gate|up weight (GATE_GROUP in common.cuh). */
    public static final int GATE_GROUP = 8;

    /**
     * Output row of the interleaved gate|up weight that holds gate row {@code i} ({@code up}: up row i), for
     * {@code inter} features: groups of {@link #GATE_GROUP} gate rows, each followed by the same features' up rows.
     */
    public static int interleavedGateUpRow(int i, boolean up) {
        return (i / GATE_GROUP) * 2 * GATE_GROUP + (up ? GATE_GROUP : 0) + i % GATE_GROUP;
    }

    /** True when {@link #gemmWgmma} can run here (an sm_90 device, the kernel loaded, not disabled). */
    public boolean wgmmaAvailable() {
        return wgmmaBf16 != null;
    }

    /** Why the wgmma GEMM is off; null when it is available. */
    public String wgmmaUnavailableReason() {
        return wgmmaOff;
    }

    /**
     * C[M, N] = A[M, K] . W[N, K]^T, C bf16 ({@code f32Out} false) or fp32; contiguous rows; K % 8 == 0. Decode-sized
     * M goes to a weight-streaming GEMM: M below {@link #SPLIT_MIN_M} (17) to the skinny GEMM, M up to
     * {@link #SPLIT_MAX_M} to the split GEMM; prefill-sized products to the wgmma GEMM where it is available
     * ({@link #usesWgmma}), the rest to the tiled mma.sync one.
     */
    public void gemm(Object a, Object w, Object c, int m, int n, int k, boolean f32Out) {
        gemm(a, w, c, m, n, k, k, k, n, f32Out);
    }

    public void gemm(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc, boolean f32Out) {
        if (m >= 1 && m <= SKINNY_MAX_M) {
            gemm32(decodeChoice(m, n, k, f32Out), a, w, c, m, n, k, lda, ldw, ldc, f32Out);
        } else if (m <= SKINNY_MAX_M) {
            gemmSkinny(a, w, c, m, n, k, lda, ldw, ldc, f32Out);
        } else if (usesWgmma(m, n)) {
            gemmWgmma(a, w, c, m, n, k, lda, ldw, ldc, f32Out);
        } else {
            gemmTiled(a, w, c, m, n, k, lda, ldw, ldc, f32Out);
        }
    }

    /**
     * Whether {@link #gemm} sends an M x N product to the wgmma GEMM: available, at least one full tile of rows, and
     * at least half as many 128 x 256 tiles as SMs (one block per SM; below that the mma.sync GEMM's smaller tiles
     * keep more SMs busy). 8b at 2,048 tokens: qkv 384 tiles, o_proj and down 256, gate|up 1,536.
     */
    public boolean usesWgmma(int m, int n) {
        long tiles = (long) ((m + WGMMA_TILE_M - 1) / WGMMA_TILE_M) * ((n + WGMMA_TILE_N - 1) / WGMMA_TILE_N);
        return wgmmaAvailable() && m >= WGMMA_TILE_M && 2 * tiles >= ctx.smCount();
    }

    /** The kernel {@link #gemm} uses for an M x N x K product (for the self-check's notes). */
    public String gemmKernelFor(int m, int n, int k, boolean f32Out) {
        if (m >= 1 && m <= SKINNY_MAX_M) {
            int b = decodeBucket(m);
            Gemm32Choice c = decodeChoice(m, n, k, f32Out);
            Gemm32Tuning t = tuned32.get(new Gemm32Key(b, n, k, f32Out));
            String how = t != null ? "tuned at M " + DECODE_BUCKET_M[b] : forced[b] != null ? "forced"
                    : "untuned default";
            String name = c.variant() == Gemm32Variant.SKINNY ? "gemm_skinny" + (m <= 8 ? 8 : m <= 16 ? 16 : 32)
                    : "gemm_" + c.variant().label + "32";
            return name + (c.variant().sliced ? " S=" + (c.slices() == 0 ? autoSlices(c.variant(), n, k)
                    : c.slices()) : c.variant() == Gemm32Variant.SKINNY ? " W=" + skinnyWarps(n, k, c.slices())
                    : "") + " (" + how + ")";
        }
        return gemmKernelFor(m, n);
    }

    /** The kernel family {@link #gemm} uses for an M x N product, M outside 17..32 (for the self-check's notes). */
    public String gemmKernelFor(int m, int n) {
        if (m >= SPLIT_MIN_M && m <= SPLIT_MAX_M) {
            return "gemm_split32";
        }
        if (m <= SKINNY_MAX_M) {
            return "gemm_skinny";
        }
        if (usesWgmma(m, n)) {
            return "gemm_wgmma";
        }
        long big = (long) ((m + 127) / 128) * ((n + 127) / 128);
        return m > GEMM_TILE && big >= ctx.smCount() ? "gemm128" : "gemm64";
    }

    /**
     * The wgmma GEMM (gemm_wgmma.cu, sm_90a only), any M and N: 128 x 256 tiles, one block of 3 warpgroups per
     * tile, M tiles fastest in the 1-D grid. Throws when it is not available here.
     */
    public void gemmWgmma(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                          boolean f32Out) {
        checkGemm("gemm (wgmma)", k, lda, ldw);
        if (!wgmmaAvailable()) {
            throw new IllegalStateException("gemm (wgmma): unavailable: " + wgmmaOff);
        }
        long tiles = (long) ((m + WGMMA_TILE_M - 1) / WGMMA_TILE_M) * ((n + WGMMA_TILE_N - 1) / WGMMA_TILE_N);
        if (tiles > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("gemm (wgmma): too many tiles: " + tiles);
        }
        (f32Out ? wgmmaF32 : wgmmaBf16).launch((int) tiles, 1, 1, WGMMA_THREADS, WGMMA_SHARED, a, w, c, m, n, k, lda,
                ldw, ldc);
    }

    private static void checkGemm(String who, int k, int lda, int ldw) {
        if (k % 8 != 0 || lda % 8 != 0 || ldw % 8 != 0) {
            throw new IllegalArgumentException(who + ": K and the row strides of A and W must be multiples of 8, got K="
                    + k + " lda=" + lda + " ldw=" + ldw);
        }
    }

    /**
     * The tiled tensor-core GEMM (gemm.cu), any M: 128 x 128 tiles when that still makes at least one block per SM
     * (prefill-sized M and N), else 64 x 64.
     */
    public void gemmTiled(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                          boolean f32Out) {
        long big = (long) ((m + 127) / 128) * ((n + 127) / 128);
        gemmTiled(a, w, c, m, n, k, lda, ldw, ldc, f32Out, m > GEMM_TILE && big >= ctx.smCount() ? 128 : 64);
    }

    /** The tiled GEMM with the given tile (64 or 128). */
    public void gemmTiled(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                          boolean f32Out, int tile) {
        checkGemm("gemm", k, lda, ldw);
        int gx = (n + tile - 1) / tile;
        int gy = (m + tile - 1) / tile;
        if (tile == 128) {
            // 4 stages x (128 + 128) rows x 40 bf16
            (f32Out ? gemm128F32 : gemm128Bf16).launch(gx, gy, 1, 256, 4 * 256 * 40 * 2, a, w, c, m, n, k, lda, ldw,
                    ldc);
        } else if (tile == 64) {
            // 3 stages x (64 + 64) rows x 40 bf16
            (f32Out ? gemmF32 : gemmBf16).launch(gx, gy, 1, 128, 3 * 128 * 40 * 2, a, w, c, m, n, k, lda, ldw, ldc);
        } else {
            throw new IllegalArgumentException("gemm: tile must be 64 or 128, got " + tile);
        }
    }

    /**
     * The skinny GEMM (gemm_skinny.cu), 1 <= M <= 32: one block per 16 weight rows, its warps splitting K. Warps per
     * block: 8, or 16 when there are too few row tiles to put ~16 warps on every SM (small N, e.g. o_proj of a small
     * model), so that enough weight loads are in flight; never more warps than K has runs of 4 chunks of 32.
     */
    public void gemmSkinny(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                           boolean f32Out) {
        gemmSkinny(a, w, c, m, n, k, lda, ldw, ldc, f32Out, 0);
    }

    /** The skinny kernel for M tokens: 0, 1, 2 (gemm_skinny8/16/32, 1/2/4 n-tiles of 8 tokens). */
    private static int skinnyVariant(int m) {
        return m <= 8 ? 0 : m <= 16 ? 1 : 2;
    }

    /** gemm_skinny's reduction buffer: warps x 16 rows x (8 n-tiles + 1) floats. */
    private static int skinnySharedBytes(int warps, int variant) {
        return warps * SKINNY_ROWS * (8 * (1 << variant) + 1) * 4;
    }

    /**
     * Warps per skinny block: {@code asked} (1, 2, 4, 8 or 16; 0: 16 when fewer than 2 row tiles per SM, else 8),
     * halved while half of them still cover K's runs of 4 chunks (more would idle).
     */
    int skinnyWarps(int n, int k, int asked) {
        int tiles = (n + SKINNY_ROWS - 1) / SKINNY_ROWS;
        int warps = asked != 0 ? asked : tiles < 2 * ctx.smCount() ? 16 : 8;
        int runs = (k + 127) / 128;
        while (warps > 1 && warps / 2 >= runs) {
            warps /= 2;
        }
        return warps;
    }

    /** The skinny GEMM with {@code warps} per block (1, 2, 4, 8, 16; 0: the heuristic of {@link #skinnyWarps}). */
    public void gemmSkinny(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                           boolean f32Out, int warpsAsked) {
        checkGemm("gemm (skinny)", k, lda, ldw);
        if (m < 1 || m > SKINNY_MAX_M) {
            throw new IllegalArgumentException("gemm (skinny): M must be in [1, " + SKINNY_MAX_M + "], got " + m);
        }
        if (warpsAsked < 0 || warpsAsked > 16 || Integer.bitCount(warpsAsked) > 1) {
            throw new IllegalArgumentException("gemm (skinny): warps must be 0, 1, 2, 4, 8 or 16, got " + warpsAsked);
        }
        int tiles = (n + SKINNY_ROWS - 1) / SKINNY_ROWS;
        int warps = skinnyWarps(n, k, warpsAsked);
        int variant = skinnyVariant(m);
        int shared = skinnySharedBytes(warps, variant);
        (f32Out ? skinnyF32 : skinnyBf16)[variant].launch(tiles, 1, 1, 32 * warps, shared, a, w, c, m, n, k, lda, ldw,
                ldc);
    }

    /**
     * K slices of the split GEMM for an N x K weight (a power of two, at most {@link #SPLIT_MAX_SLICES}): the fewest
     * with at most 32 chunks of 32 k per slice (2 staged segments), doubled while the grid has fewer than 4 blocks
     * per SM and a slice keeps at least 4 chunks. qwen3-8b on 132 SMs: gate|up (24576 x 4096) and lm_head 4; qkv
     * (6144 x 4096), o_proj (4096 x 4096), down (4096 x 12288) 8.
     */
    static int splitSlices(int n, int k, int smCount) {
        int chunks = (k + 31) / 32;
        long tiles = (n + SPLIT_ROWS - 1) / SPLIT_ROWS;
        int s = 1;
        while (s < SPLIT_MAX_SLICES && (chunks + s - 1) / s > 2 * SPLIT_SEG) {
            s *= 2;
        }
        while (s < SPLIT_MAX_SLICES && tiles * s < 4L * smCount && (chunks + 2 * s - 1) / (2 * s) >= SPLIT_UNROLL) {
            s *= 2;
        }
        return s;
    }

    /** Chunks of 32 k per slice when K is cut into {@code slices}; the last slices may be shorter or empty. */
    static int splitChunksPerSlice(int k, int slices) {
        int chunks = (k + 31) / 32;
        return (chunks + slices - 1) / slices;
    }

    /** Dynamic shared memory of a split-GEMM block: one staged A segment, or the fp32 partial tile if larger. */
    static int splitSharedBytes(int chunksPerSlice) {
        int seg = Math.min(SPLIT_SEG, (chunksPerSlice + SPLIT_UNROLL - 1) / SPLIT_UNROLL * SPLIT_UNROLL);
        return Math.max(seg * SPLIT_MAX_M * 32 * 2, SPLIT_MAX_M * SPLIT_LDP * 4);
    }

    /** The split GEMM with the K slicing {@link #splitSlices} picks. @return the slices used */
    public int gemmSplit(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                         boolean f32Out) {
        return gemmSplit(a, w, c, m, n, k, lda, ldw, ldc, f32Out, splitSlices(n, k, ctx.smCount()));
    }

    /**
     * The split GEMM (gemm_split.cu), 1 <= M <= 32: one block per 128 weight rows and K slice, its 8 warps on 16 rows
     * each, the slice's activations staged once in shared memory; the {@code slices} blocks of a row tile form a
     * cluster and sum their partial tiles in a fixed order (deterministic). Grid (slices, ceil(N / 128)).
     *
     * @param slices 1, 2, 4 or 8 (1 when the driver refused cluster launches, see {@link #clusterRefusal})
     * @return the slices used
     */
    public int gemmSplit(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc, boolean f32Out,
                         int slices) {
        return launchClusterGemm("split", f32Out ? splitF32 : splitBf16, SPLIT_ROWS, SPLIT_THREADS,
                CudaKernels::splitSharedBytes, a, w, c, m, n, k, lda, ldw, ldc, slices);
    }

    // ---- decode GEMMs for 17..32 token rows: the variants, and the tuner that picks one per weight shape ---------

    /** The kernels that can run an M 17..32 decode GEMM. {@code sliced}: takes K slices (1, 2, 4, 8). */
    public enum Gemm32Variant {
        /**
         * gemm_skinny8/16/32 by M (16 rows per block, warps split K; A read per block: 2x the weights at M 32); its
         * parameter is the warps per block (4, 8, 16; 0 the heuristic).
         */
        SKINNY("skinny", false),
        /** gemm_split32 (128 rows per block, A staged per 16-chunk segment, cluster K split). */
        SPLIT("split", true),
        /** gemm_pipe32 (split's block, continuous weight stream, A double-buffered per 8-chunk segment). */
        PIPE("pipe", true),
        /** gemm_dual32 (32 rows per block, two mma row tiles per warp, warps split K; A 1x the weights). */
        DUAL("dual", false);

        final String label;
        final boolean sliced;

        Gemm32Variant(String label, boolean sliced) {
            this.label = label;
            this.sliced = sliced;
        }
    }

    /**
     * A variant and its K slices (0: the host's heuristic; 1 for dual); for skinny, {@code slices} is the warps per
     * block (0: the heuristic).
     */
    public record Gemm32Choice(Gemm32Variant variant, int slices) {
        @Override
        public String toString() {
            return variant.label + (variant.sliced ? slices == 0 ? " S=auto" : " S=" + slices
                    : variant == Gemm32Variant.SKINNY && slices != 0 ? " W=" + slices : "");
        }
    }

    /** What the tuner times a choice by: the decode bucket, the weight shape and the output type. */
    record Gemm32Key(int bucket, int n, int k, boolean f32Out) {
    }

    /** The decode bucket of M 1..32: 0 (M 1), 1 (2..8), 2 (9..16), 3 (17..32). */
    static int decodeBucket(int m) {
        return m <= 1 ? 0 : m <= 8 ? 1 : m <= 16 ? 2 : 3;
    }

    /** "1", "2..8", "9..16", "17..32". */
    static String bucketRange(int b) {
        int lo = b == 0 ? 1 : DECODE_BUCKET_M[b - 1] + 1;
        int hi = DECODE_BUCKET_M[b];
        return lo == hi ? Integer.toString(lo) : lo + ".." + hi;
    }

    /**
     * One tuned shape: the pick, and every candidate's best microseconds per launch (M = 32, cold weights), in the
     * order timed.
     */
    public record Gemm32Tuning(String name, int n, int k, boolean f32Out, Gemm32Choice choice,
                               Map<Gemm32Choice, Double> micros, int tuneM) {

        /** "gate_up 24576x4096 bf16 M 32: pipe S=2 52.1 us (3863 GB/s); skinny 92.0, dual 60.1, ..." */
        public String describe() {
            double best = micros.get(choice);
            StringBuilder b = new StringBuilder(String.format(Locale.ROOT,
                    "%s %dx%d %s M %d: %s %.1f us (%.0f GB/s);", name, n, k, f32Out ? "f32" : "bf16", tuneM, choice,
                    best, 2.0 * n * k / best / 1e3));
            for (Map.Entry<Gemm32Choice, Double> e : micros.entrySet()) {
                b.append(String.format(Locale.ROOT, " %s %.1f,", e.getKey(), e.getValue()));
            }
            b.setLength(b.length() - 1);
            return b.toString();
        }
    }

    /** Parses {@link #GEMM32_PROPERTY}: "skinny", "split", "pipe", "dual", optionally ":S"; null when unset. */
    static Gemm32Choice parseGemm32(String v) {
        return parseDecodeChoice(GEMM32_PROPERTY, v);
    }

    /** Parses a bucket's force property: "skinny[:W]" (W 4, 8, 16), "dual", "split[:S]", "pipe[:S]". */
    static Gemm32Choice parseDecodeChoice(String property, String v) {
        if (v == null || v.isBlank()) {
            return null;
        }
        String[] parts = v.trim().toLowerCase(Locale.ROOT).split(":");
        Gemm32Variant variant = null;
        for (Gemm32Variant g : Gemm32Variant.values()) {
            if (g.label.equals(parts[0])) {
                variant = g;
            }
        }
        boolean param = variant != null && (variant.sliced || variant == Gemm32Variant.SKINNY);
        int slices = 0;
        if (parts.length == 2 && param) {
            try {
                slices = Integer.parseInt(parts[1]);
            } catch (NumberFormatException e) {
                slices = -1;
            }
        }
        int value = slices;
        boolean badW = variant == Gemm32Variant.SKINNY && parts.length == 2
                && Arrays.stream(SKINNY_WARPS).noneMatch(x -> x == value);
        if (variant == null || parts.length > 2 || (parts.length == 2 && !param) || badW
                || (variant.sliced && slices != 0 && (slices < 1 || slices > SPLIT_MAX_SLICES
                || Integer.bitCount(slices) != 1))) {
            throw new IllegalArgumentException("-D" + property + "=" + v + ": expected skinny[:W], dual, split[:S] "
                    + "or pipe[:S] with W 4, 8 or 16 and S 1, 2, 4 or 8");
        }
        return new Gemm32Choice(variant, param ? slices : 1);
    }

    /** The forced choices per bucket ("M 1 dual, M 17..32 pipe S=2"), or null when none is forced. */
    public String forcedDecode() {
        List<String> parts = new ArrayList<>();
        for (int b = 0; b < forced.length; b++) {
            if (forced[b] != null) {
                parts.add("M " + bucketRange(b) + " " + forced[b]);
            }
        }
        return parts.isEmpty() ? null : String.join(", ", parts);
    }

    /**
     * The kernel {@link #gemm} runs for M 17..32 on an N x K weight: the tuner's pick for the shape; else the forced
     * variant (-Ddistserve.cuda.gemm32) with its heuristic slicing; else, untuned, the split GEMM as before the tuner
     * (the skinny one if -Ddistserve.cuda.splitMinM put M 17 out of the split range).
     */
    public Gemm32Choice decode32Choice(int n, int k, boolean f32Out) {
        return decodeChoice(DECODE32_TUNE_M, n, k, f32Out);
    }

    /**
     * The kernel {@link #gemm} runs for an M 1..32 product on an N x K weight: the tuner's pick for M's bucket and the
     * shape; else the bucket's forced variant; else, untuned, what ran before the tuner: M 17..32 the split GEMM
     * (skinny if -Ddistserve.cuda.splitMinM put 17 out of its range), M 1..16 the skinny GEMM (split from splitMinM).
     */
    public Gemm32Choice decodeChoice(int m, int n, int k, boolean f32Out) {
        int b = decodeBucket(m);
        Gemm32Tuning t = tuned32.get(new Gemm32Key(b, n, k, f32Out));
        if (t != null) {
            return t.choice();
        }
        if (forced[b] != null) {
            return forced[b];
        }
        boolean split = m >= DECODE32_MIN_M ? SPLIT_MIN_M <= DECODE32_MIN_M : m >= SPLIT_MIN_M;
        return new Gemm32Choice(split ? Gemm32Variant.SPLIT : Gemm32Variant.SKINNY, 0);
    }

    /** The heuristic K slices of a sliced variant when none is given. */
    int autoSlices(Gemm32Variant v, int n, int k) {
        return v == Gemm32Variant.PIPE ? pipeSlices(n, k, ctx.smCount())
                : v == Gemm32Variant.SPLIT ? splitSlices(n, k, ctx.smCount()) : 1;
    }

    /** Runs one M 1..32 GEMM on the given choice. @return the K slices used (1 for the unsliced variants) */
    public int gemm32(Gemm32Choice choice, Object a, Object w, Object c, int m, int n, int k, int lda, int ldw,
                      int ldc, boolean f32Out) {
        int s = choice.slices() == 0 ? autoSlices(choice.variant(), n, k) : choice.slices();
        switch (choice.variant()) {
            case SKINNY -> {
                gemmSkinny(a, w, c, m, n, k, lda, ldw, ldc, f32Out, choice.slices());
                return 1;
            }
            case DUAL -> {
                gemmDual(a, w, c, m, n, k, lda, ldw, ldc, f32Out);
                return 1;
            }
            case SPLIT -> {
                return gemmSplit(a, w, c, m, n, k, lda, ldw, ldc, f32Out, s);
            }
            case PIPE -> {
                return gemmPipe(a, w, c, m, n, k, lda, ldw, ldc, f32Out, s);
            }
            default -> throw new IllegalStateException("unknown variant " + choice.variant());
        }
    }

    /**
     * gemm_dual32 (gemm_decode32.cu), 1 <= M <= 32: one block per 32 weight rows (two mma row tiles per warp), 8
     * warps splitting K in runs of 2 chunks of 32 (fewer when K is short). Grid ceil(N / 32).
     */
    public void gemmDual(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                         boolean f32Out) {
        checkGemm("gemm (dual)", k, lda, ldw);
        if (m < 1 || m > SKINNY_MAX_M) {
            throw new IllegalArgumentException("gemm (dual): M must be in [1, " + SKINNY_MAX_M + "], got " + m);
        }
        int tiles = (n + DUAL_ROWS - 1) / DUAL_ROWS;
        int warps = dualWarps(k);
        (f32Out ? dualF32 : dualBf16).launch(tiles, 1, 1, 32 * warps, dualSharedBytes(warps), a, w, c, m, n, k, lda,
                ldw, ldc);
    }

    /** gemm_dual32's warps: 8, halved while half of them still cover K's runs of DUAL_UNROLL chunks. */
    private static int dualWarps(int k) {
        int warps = 8;
        int runs = (k + 32 * DUAL_UNROLL - 1) / (32 * DUAL_UNROLL);
        while (warps > 1 && warps / 2 >= runs) {
            warps /= 2;
        }
        return warps;
    }

    /** gemm_dual32's reduction buffer: warps x 32 rows x 33 floats. */
    static int dualSharedBytes(int warps) {
        return warps * DUAL_ROWS * (32 + 1) * 4;
    }

    /**
     * K slices of the pipe GEMM when not tuned: the fewest (power of two, at most 8) that give at least 2 blocks per
     * SM (it runs 3 per SM), while a slice keeps at least one 8-chunk segment. qwen3-8b on 132 SMs: gate|up 2 (384
     * blocks), qkv 8 (384), o_proj and down 8 (256), lm_head 1 (1,187).
     */
    static int pipeSlices(int n, int k, int smCount) {
        int chunks = (k + 31) / 32;
        long tiles = (n + PIPE_ROWS - 1) / PIPE_ROWS;
        int s = 1;
        while (s < SPLIT_MAX_SLICES && tiles * s < 2L * smCount && (chunks + 2 * s - 1) / (2 * s) >= PIPE_SEG) {
            s *= 2;
        }
        return s;
    }

    /** The pipe GEMM with {@link #pipeSlices}. @return the slices used */
    public int gemmPipe(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc,
                        boolean f32Out) {
        return gemmPipe(a, w, c, m, n, k, lda, ldw, ldc, f32Out, pipeSlices(n, k, ctx.smCount()));
    }

    /**
     * gemm_pipe32 (gemm_decode32.cu), 1 <= M <= 32: one block per 128 weight rows and K slice (8 warps x 16 rows),
     * weights streamed without a pause, A double-buffered in shared memory; the {@code slices} blocks of a row tile
     * form a cluster and sum their partial tiles in a fixed order (deterministic). Grid (slices, ceil(N / 128)).
     *
     * @param slices 1, 2, 4 or 8 (1 when the driver refused cluster launches)
     * @return the slices used
     */
    public int gemmPipe(Object a, Object w, Object c, int m, int n, int k, int lda, int ldw, int ldc, boolean f32Out,
                        int slices) {
        return launchClusterGemm("pipe", f32Out ? pipeF32 : pipeBf16, PIPE_ROWS, PIPE_THREADS, cps -> PIPE_SHARED, a, w,
                c, m, n, k, lda, ldw, ldc, slices);
    }

    /**
     * The launch shared by the cluster GEMMs (split, pipe): grid (slices, ceil(N / rowsPerBlock)), one cluster of
     * {@code slices} blocks per row tile, K cut into {@link #splitChunksPerSlice} chunks per block.
     *
     * @param variants  the kernel per slice count (index log2(slices))
     * @param sharedFor dynamic shared memory for a given number of chunks per slice
     * @return the slices used (1 when the driver refused cluster launches, see {@link #clusterRefusal})
     */
    private int launchClusterGemm(String label, Kernel[] variants, int rowsPerBlock, int threads,
                                  java.util.function.IntUnaryOperator sharedFor, Object a, Object w, Object c, int m,
                                  int n, int k, int lda, int ldw, int ldc, int slices) {
        checkGemm("gemm (" + label + ")", k, lda, ldw);
        if (m < 1 || m > SKINNY_MAX_M) {
            throw new IllegalArgumentException("gemm (" + label + "): M must be in [1, " + SKINNY_MAX_M + "], got " + m);
        }
        int idx = Integer.numberOfTrailingZeros(slices);
        if (slices < 1 || slices > SPLIT_MAX_SLICES || slices != 1 << idx) {
            throw new IllegalArgumentException("gemm (" + label + "): slices must be 1, 2, 4 or 8, got " + slices);
        }
        long tiles = (n + rowsPerBlock - 1) / rowsPerBlock;
        if (tiles > 65_535) {
            throw new IllegalArgumentException("gemm (" + label + "): N too large for grid.y: " + n);
        }
        if (clusterRefusal != null) {
            slices = 1;
            idx = 0;
        }
        int cps = splitChunksPerSlice(k, slices);
        variants[idx].launch(slices, (int) tiles, 1, threads, sharedFor.applyAsInt(cps), a, w, c, m, n, k, lda, ldw,
                ldc, cps);
        return slices;
    }

    /** The candidates the tuner times for M 17..32 ({@link #decodeCandidates} of that bucket). */
    List<Gemm32Choice> decode32Candidates() {
        return decodeCandidates(DECODE_BUCKET_M.length - 1);
    }

    /**
     * The candidates the tuner times for a bucket: the forced variant's (its slicings / warps), or skinny W 4/8/16
     * and dual. The split and pipe GEMMs (S 1/2/4/8) are timed only when forced: on the qwen3-8b shapes (H100 and
     * H200, 2026-11-21 to 12-05) neither won a bucket since the tuner times GPU work only, while timing
     * their 8 candidates was two thirds of the ~1.1 s the tuner added to a qwen3-8b load (issue 19). Every
     * variant is correct for any M in 1..32 (tokens >= M are zero or token 0 and never stored; the self-check's
     * rows at M 1, 5, 8, 13, 16 and 17..32 check it).
     */
    List<Gemm32Choice> decodeCandidates(int bucket) {
        Gemm32Choice f = forced[bucket];
        int[] slicings = clusterRefusal == null ? new int[] {1, 2, 4, 8} : new int[] {1};
        List<Gemm32Choice> out = new ArrayList<>();
        for (Gemm32Variant v : Gemm32Variant.values()) {
            if (f != null && f.variant() != v || f == null && v.sliced) {
                continue;
            }
            if (f != null && f.slices() != 0 && v != Gemm32Variant.DUAL) {
                out.add(f);
            } else if (v == Gemm32Variant.DUAL) {
                out.add(new Gemm32Choice(v, 1));
            } else {
                for (int s : v == Gemm32Variant.SKINNY ? SKINNY_WARPS : slicings) {
                    out.add(new Gemm32Choice(v, s));
                }
            }
        }
        return out;
    }

    /** The cache key of a tuned shape: "bucket&lt;TAB&gt;N&lt;TAB&gt;K&lt;TAB&gt;f32|bf16". */
    static String pickKey(int bucket, int n, int k, boolean f32Out) {
        return bucket + "\t" + n + "\t" + k + "\t" + (f32Out ? "f32" : "bf16");
    }

    /** The tuner's picks as {@link DecodeTuningCache} keeps them: key -> "variant:param". */
    public Map<String, String> tunedPicks() {
        Map<String, String> out = new java.util.TreeMap<>();
        tuned32.forEach((key, t) -> out.put(pickKey(key.bucket(), key.n(), key.k(), key.f32Out()),
                encodePick(t.choice())));
        return out;
    }

    /** A pick as the cache writes it: "variant:param" (dual:1, skinny:8, pipe:2, ...). */
    static String encodePick(Gemm32Choice c) {
        return c.variant().label + ":" + c.slices();
    }

    /** The inverse of {@link #encodePick}; null for anything else. */
    static Gemm32Choice decodePick(String v) {
        int colon = v == null ? -1 : v.indexOf(':');
        if (colon < 0) {
            return null;
        }
        for (Gemm32Variant g : Gemm32Variant.values()) {
            if (g.label.equals(v.substring(0, colon))) {
                try {
                    return new Gemm32Choice(g, Integer.parseInt(v.substring(colon + 1)));
                } catch (NumberFormatException e) {
                    return null;
                }
            }
        }
        return null;
    }

    /**
     * Takes a shape's picks from {@code picks} (a cache's) for every bucket; true when all were there and valid,
     * false (nothing adopted) otherwise, and the shape is tuned instead.
     */
    public boolean adoptPicks(String name, int n, int k, boolean f32Out, Map<String, String> picks) {
        Gemm32Choice[] choices = new Gemm32Choice[DECODE_BUCKET_M.length];
        for (int b = 0; b < choices.length; b++) {
            String v = picks.get(pickKey(b, n, k, f32Out));
            if (v == null) {
                return false;
            }
            choices[b] = decodePick(v);
            if (choices[b] == null || !decodeCandidates(b).contains(choices[b])) {
                return false; // a kernel this build does not offer for the bucket
            }
        }
        for (int b = 0; b < choices.length; b++) {
            tuned32.put(new Gemm32Key(b, n, k, f32Out), new Gemm32Tuning(name, n, k, f32Out, choices[b],
                    Map.of(choices[b], Double.NaN), DECODE_BUCKET_M[b]));
        }
        return true;
    }

    /** {@link #tuneDecode} of every bucket (M 1, 2..8, 9..16, 17..32). */
    public List<Gemm32Tuning> tuneDecodeAll(String name, int n, int k, boolean f32Out, List<?> weights) {
        List<Integer> all = new ArrayList<>();
        for (int b = 0; b < DECODE_BUCKET_M.length; b++) {
            all.add(b);
        }
        return tuneDecode(all, name, n, k, f32Out, weights);
    }

    /**
     * For each given bucket, times every candidate ({@link #decodeCandidates}) at the bucket's largest M
     * ({@link #DECODE_BUCKET_M}) on an N x K weight and keeps the fastest for every later {@link #gemm} of that shape
     * with M in the bucket. Launches go to scratch A and C buffers of its own; the weights are read only and cycled
     * through {@code weights} (e.g. every layer's matrix of the shape, so that no launch finds its weight in L2).
     * Each candidate: one warm-up, then 3 rounds (candidates interleaved) of 3 timed launches queued behind a 1 ms
     * gpu_spin ({@link #timeQueued}: GPU time only, whatever the host's launch speed); its time is the best round's
     * mean (4 buckets x 12 candidates x 3 rounds x (1 ms + 3 launches): ~1 s on qwen3-8b). Synchronizes:
     * never call it while the stream is being captured (it refuses to).
     *
     * @param name    for the table and the log (e.g. "gate_up")
     * @param weights N x K bf16 matrices (DeviceBuffer or CUdeviceptr), at least one
     * @return the tunings, in bucket order, also kept for {@link #gemm} and {@link #decodeSummary}
     */
    /** Head start of the GPU over the host in each timed window of the tuner ({@link #timeQueued}). */
    static final int TUNE_SPIN_MICROS = 1000;

    public synchronized List<Gemm32Tuning> tuneDecode(List<Integer> buckets, String name, int n, int k,
                                                      boolean f32Out, List<?> weights) {
        if (weights.isEmpty()) {
            throw new IllegalArgumentException("tuneDecode: no weights");
        }
        checkGemm("tuneDecode", k, k, k);
        ctx.makeCurrent();
        int[] capturing = new int[1];
        Cuda.check(JCudaDriver.cuStreamIsCapturing(ctx.stream(), capturing), "cuStreamIsCapturing");
        if (capturing[0] != 0) {
            throw new IllegalStateException("tuneDecode: the stream is being captured (a graph must not capture "
                    + "a tuning run)");
        }
        int maxM = SKINNY_MAX_M;
        List<Gemm32Tuning> out = new ArrayList<>();
        int[] next = {0};
        try (DeviceBuffer a = ctx.allocate("tune32_a", 2L * maxM * k);
             DeviceBuffer c = ctx.allocate("tune32_c", (f32Out ? 4L : 2L) * maxM * n + 4)) {
            a.fill32(0x3C003C00);  // bf16 0.0078125: finite products, whatever the weights
            for (int bucket : buckets) {
                int m = DECODE_BUCKET_M[bucket];
                List<Gemm32Choice> cands = decodeCandidates(bucket);
                double[] best = new double[cands.size()];
                Arrays.fill(best, Double.MAX_VALUE);
                for (Gemm32Choice ch : cands) {
                    gemm32(ch, a, weights.get(next[0]++ % weights.size()), c, m, n, k, k, k, n, f32Out);
                }
                final int rounds = 3;
                final int launches = 3;
                for (int r = 0; r < rounds; r++) {
                    for (int i = 0; i < cands.size(); i++) {
                        Gemm32Choice ch = cands.get(i);
                        float ms = timeQueued(() -> {
                            for (int l = 0; l < launches; l++) {
                                gemm32(ch, a, weights.get(next[0]++ % weights.size()), c, m, n, k, k, k, n, f32Out);
                            }
                        }, TUNE_SPIN_MICROS);
                        best[i] = Math.min(best[i], 1e3 * ms / launches);
                    }
                }
                int pick = 0;
                Map<Gemm32Choice, Double> micros = new LinkedHashMap<>();
                for (int i = 0; i < cands.size(); i++) {
                    micros.put(cands.get(i), best[i]);
                    if (best[i] < best[pick]) {
                        pick = i;
                    }
                }
                Gemm32Tuning t = new Gemm32Tuning(name, n, k, f32Out, cands.get(pick),
                        java.util.Collections.unmodifiableMap(micros), m);
                tuned32.put(new Gemm32Key(bucket, n, k, f32Out), t);
                LOG.debug("decode GEMM M {} tuned: {}", bucketRange(bucket), t.describe());
                out.add(t);
            }
        }
        return out;
    }

    /** {@link #tuneDecodeScratch} of the M 17..32 bucket. */
    public Gemm32Tuning tuneDecode32Scratch(String name, int n, int k, boolean f32Out) {
        return tuneDecodeScratch(List.of(DECODE_BUCKET_M.length - 1), name, n, k, f32Out).get(0);
    }

    /**
     * {@link #tuneDecode} on scratch weights (the self-check, no model): enough copies of an N x K matrix to cover
     * 256 MB (at most 8), zero-filled, cycled; freed afterwards. The picks stay for the shape on this instance.
     */
    public List<Gemm32Tuning> tuneDecodeScratch(List<Integer> buckets, String name, int n, int k, boolean f32Out) {
        long bytes = 2L * n * k;
        int copies = (int) Math.max(1, Math.min(8, ((256L << 20) + bytes - 1) / bytes));
        try (DeviceBuffer w = ctx.allocate("tune32_w", bytes * copies)) {
            w.fill32(0);
            List<Object> views = new ArrayList<>();
            for (int i = 0; i < copies; i++) {
                views.add(byteOffset(w, i * bytes));
            }
            return tuneDecode(buckets, name, n, k, f32Out, views);
        }
    }

    private String bucketSummary(int bucket) {
        List<String> parts = new ArrayList<>();
        for (Map.Entry<Gemm32Key, Gemm32Tuning> e : tuned32.entrySet()) {
            if (e.getKey().bucket() == bucket) {
                parts.add(e.getValue().name() + " " + e.getValue().choice());
            }
        }
        parts.sort(null);
        return parts.isEmpty() ? "untuned" + (forced[bucket] != null ? ", forced " + forced[bucket] : "")
                : String.join(", ", parts);
    }

    /** The picks of every bucket: "M 1: down dual, ...; M 2..8: ...; M 9..16: ...; M 17..32: ...". */
    public String decodeSummary() {
        List<String> parts = new ArrayList<>();
        for (int b = 0; b < DECODE_BUCKET_M.length; b++) {
            parts.add("M " + bucketRange(b) + ": " + bucketSummary(b));
        }
        return String.join("; ", parts);
    }

    /** Rows (query tokens x heads) of one attention block for a GQA group size: HG heads, QT tokens. */
    static int headsPerBlock(int group) {
        int hg = 1;
        for (int d = 1; d <= Math.min(group, ATTN_ROWS); d++) {
            if (group % d == 0) {
                hg = d;
            }
        }
        return hg;
    }

    static int attentionSharedBytes(int rows, int headDim) {
        return 4 * (2 * rows * headDim + rows * ATTN_KEYS + 3 * ATTN_ROWS + ATTN_KEYS * (headDim / 2 + 1)
                + ATTN_KEYS * headDim / 2);
    }

    /**
     * Causal GQA attention of one layer over the paged cache, as the plan cuts it ({@link AttentionPlan}):
     * attention_prefill for the prefill items (tensor cores), paged_attention (split-KV merged in its last split)
     * for the others, each writing its own rows of {@code out}. {@code items} holds the plan's item table (the
     * paged_attention items, then the prefill items); {@code geom} holds {splitLen, tableStride} in device memory
     * (what a decode graph replays with new values); with {@code splits > 1}, partO/partML are the workspace.
     */
    public void attention(Object q, Object cache, Object items, Object blockTables, Object geom, Object out,
                          Object partO, Object partML, Object splitDone, AttentionPlan plan, int n, int heads, int kvHeads, int headDim,
                          int layer, int numLayers, int blockSize, float scale) {
        if (plan.prefillItems() > 0) {
            attentionPrefill(q, cache, byteOffset(items, 16L * plan.items()), blockTables, geom, out,
                    plan.prefillItems(), plan.prefillHeadsPerBlock(), heads, kvHeads, headDim, layer, numLayers,
                    blockSize, scale);
        }
        if (plan.items() > 0) {
            pagedAttention(q, cache, items, blockTables, geom, out, partO, partML, splitDone, plan, n, heads, kvHeads,
                    headDim,
                    layer, numLayers, blockSize, scale);
        }
    }

    /**
     * paged_attention (see attention.cu) over the plan's first {@code plan.items()} items; when split, the last
     * split of each block tile merges the partials in the same launch, counting in {@code splitDone} (at least
     * {@link #splitDoneInts} ints, zero before the first launch; every launch leaves them zero).
     */
    public void pagedAttention(Object q, Object cache, Object items, Object blockTables, Object geom, Object out,
                               Object partO, Object partML, Object splitDone, AttentionPlan plan, int n, int heads,
                               int kvHeads, int headDim, int layer, int numLayers, int blockSize, float scale) {
        int rows = plan.tokensPerItem() * plan.headsPerBlock();
        attention.launch(plan.items(), heads / plan.headsPerBlock(), plan.splits(), 128,
                attentionSharedBytes(rows, headDim), q, cache, items, blockTables, geom, out, partO, partML,
                splitDone, n, heads, kvHeads, headDim, plan.headsPerBlock(), plan.tokensPerItem(), layer, numLayers,
                blockSize, scale);
    }

    /** Split counters paged_attention needs for a step of {@code n} tokens: one per (item, head group). */
    public static long splitDoneInts(int n, int heads) {
        return (long) n * heads;
    }

    /** Head dims with an attention_prefill variant. */
    static boolean prefillSupports(int headDim) {
        return headDim == 64 || headDim == 128;
    }

    /** Query heads per attention_prefill block (HG): the largest of 4, 2, 1 that divides the GQA group. */
    static int prefillHeadsPerBlock(int group) {
        return group % 4 == 0 ? 4 : group % 2 == 0 ? 2 : 1;
    }

    /** 2 stages x (K + V) x 64 keys x (headDim + 8) bf16: 69,632 bytes at head dim 128, 36,864 at 64. */
    static int prefillSharedBytes(int headDim) {
        return 2 * 2 * PREFILL_KEYS * (headDim + 8) * 2;
    }

    /**
     * attention_prefill (attention_prefill.cu): {@code prefillItems} items of {slice, first token, tokens (at most
     * 64 / hg), first position} at {@code items}, {@code hg} query heads of one KV head per block; writes the final
     * bf16 rows of its tokens. {@code geom[1]} is the block-table stride.
     */
    public void attentionPrefill(Object q, Object cache, Object items, Object blockTables, Object geom, Object out,
                                 int prefillItems, int hg, int heads, int kvHeads, int headDim, int layer,
                                 int numLayers, int blockSize, float scale) {
        if (!prefillSupports(headDim)) {
            throw new IllegalArgumentException("attention_prefill: head dim must be 64 or 128, got " + headDim);
        }
        if ((heads / kvHeads) % hg != 0) {
            throw new IllegalArgumentException("attention_prefill: " + hg + " heads per block do not divide the GQA "
                    + "group " + heads / kvHeads);
        }
        float scaleLog2 = (float) (scale / Math.log(2.0));
        (headDim == 128 ? prefill128 : prefill64).launch(prefillItems * (heads / hg), 1, 1, 32 * PREFILL_ROWS / 16,
                prefillSharedBytes(headDim), q, cache, items, blockTables, geom, out, heads, kvHeads, hg, layer,
                numLayers, blockSize, scaleLog2);
    }

    /** {@code p} (a DeviceBuffer or CUdeviceptr) plus {@code bytes}. */
    static CUdeviceptr byteOffset(Object p, long bytes) {
        if (p instanceof DeviceBuffer b) {
            return b.at(bytes);
        }
        if (p instanceof CUdeviceptr d) {
            return d.withByteOffset(bytes);
        }
        throw new IllegalArgumentException("not a device pointer: " + p);
    }

    /**
     * GPU milliseconds of {@code work}'s launches, with the host's launch time kept out: a {@code gpu_spin} of
     * {@code spinMicros} is enqueued first, so that the launches are queued before the start event fires (measured
     * on an H100: without it, the tuner timed JIT-cold Java launch calls and picked kernels 2.5x slower than the
     * best for o_proj at batch 1). {@code spinMicros} must exceed the host time to enqueue {@code work}.
     */
    public float timeQueued(Runnable work, int spinMicros) {
        spin.launch(1, 1, 1, 1, 0, (long) spinMicros * 1000L);
        return ctx.timeMillis(work);
    }

    /** ids[r] = argmax of logits row r (lowest index on ties, NaN never wins; -1 when nothing exceeds -inf). */
    public void argmax(Object logits, Object ids, int rows, int vocab) {
        argmax.launch(rows, 1, 1, 1024, 0, logits, ids, vocab);
    }

    /**
     * The per-row parameters of {@link #sample}, packed as the kernel reads them (24 bytes a row: temperature,
     * topK, topP, minP as 32-bit words, then u as a double).
     */
    public static int[] sampleParams(float[] temperature, int[] topK, float[] topP, float[] minP, double[] u) {
        int[] words = new int[6 * temperature.length];
        for (int r = 0; r < temperature.length; r++) {
            long bits = Double.doubleToRawLongBits(u[r]);
            words[6 * r] = Float.floatToRawIntBits(temperature[r]);
            words[6 * r + 1] = topK[r];
            words[6 * r + 2] = Float.floatToRawIntBits(topP[r]);
            words[6 * r + 3] = Float.floatToRawIntBits(minP[r]);
            words[6 * r + 4] = (int) bits;          // little-endian double
            words[6 * r + 5] = (int) (bits >>> 32);
        }
        return words;
    }

    /**
     * ids[r] = the token sampled from logits row r ({@link io.distserve.engine.sampling.RowSampling} semantics);
     * the logits are overwritten with weights. {@code params} as {@link #sampleParams} packs them.
     */
    public void sample(Object logits, Object params, Object ids, int rows, int vocab) {
        sample.launch(rows, 1, 1, 1024, 0, logits, params, ids, vocab);
    }

    /**
     * The repetition penalty of each row, in place (repetition_penalty in sampling.cu;
     * {@link io.distserve.engine.sampling.RepetitionPenalties}): row r's ids are {@code hist[off[r] .. off[r + 1])},
     * its penalty {@code penalties[r]} (fp32; 1 leaves the row alone).
     */
    public void repetitionPenalty(Object logits, Object hist, Object off, Object penalties, int rows, int vocab) {
        penalty.launch(rows, 1, 1, 256, 4 * ((vocab + 31) / 32), logits, hist, off, penalties, vocab);
    }

    /**
     * The device arguments of {@link #repetitionPenalty} for a step's penalties, as one int array: offsets [rows + 1],
     * the penalties' fp32 bits [rows], then the penalised rows' ids (rows without a penalty contribute none).
     */
    public static int[] penaltyWords(io.distserve.engine.sampling.RepetitionPenalties p) {
        int rows = p.rows();
        long total = p.totalTokens();
        if (total > Integer.MAX_VALUE - 2L * rows - 1) {
            throw new IllegalArgumentException("repetition penalty: " + total + " history tokens in one step");
        }
        int[] words = new int[2 * rows + 1 + (int) total];
        int o = 2 * rows + 1;
        for (int r = 0; r < rows; r++) {
            words[r] = o - (2 * rows + 1);
            words[rows + 1 + r] = Float.floatToRawIntBits(p.penalty()[r]);
            if (p.applies(r)) {
                System.arraycopy(p.history()[r], 0, words, o, p.length()[r]);
                o += p.length()[r];
            }
        }
        words[rows] = o - (2 * rows + 1);
        return words;
    }
}
