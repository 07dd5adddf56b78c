package io.distserve.engine.cuda;

import io.distserve.engine.SequenceSlice;
import io.distserve.engine.SequenceSlice.LogitsMode;
import io.distserve.engine.cpu.CpuBackend;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.safetensors.FloatCodec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;
import jcuda.Pointer;

/**
 * Correctness checks of every kernel against a Java reference (double precision, on the same bf16-rounded inputs),
 * and of the whole backend against the CPU backend. Fresh random inputs at sizes that are not multiples of the
 * tiles; outputs poisoned with NaN before each run so that unwritten elements fail; error ||out - ref|| / ||ref||.
 * Shared by the JUnit tests (which skip without a GPU) and {@link CudaSelfCheck} (run on the GPU machine).
 */
public final class CudaChecks {

    /** bf16 outputs (and everything downstream of bf16 activations). */
    public static final double TOL_BF16 = 1e-2;
    /** fp32 outputs of exact bf16 inputs, fp32 accumulation. */
    public static final double TOL_F32 = 1e-3;
    /**
     * Whole model, bf16 activations and KV cache against the float32 CPU backend. Calibrated, not guessed: on the
     * same checkpoints, Hugging Face's own bf16 forward differs from its float32 one by up to 0.31 in max-abs at a
     * logit std of 3.0 (gpu-engine/parity/hf_parity_2026-11-21_H200.txt), and llama-tiny without q/k norm (sharper
     * attention) measured 1.2e-2 to 3.03e-2 here over fresh random weights; 3e-2 sat inside that spread. Greedy
     * choices must still agree wherever the top-2 gap exceeds the tolerance.
     */
    public static final double TOL_MODEL = 5e-2;
    static final int NAN_F32 = 0x7FC00000;
    static final short NAN_BF16 = 0x7FC0;

    /** One row of the table. */
    public record Result(String check, String shape, double relError, double maxAbs, double tolerance, float millis,
                         String note) {
        public boolean passed() {
            return !Double.isNaN(relError) && relError <= tolerance && (note == null || !note.startsWith("FAIL"));
        }
    }

    private final CudaKernels k;
    private final CudaContext ctx;
    private final Random rnd;
    private final List<Result> results = new ArrayList<>();
    private final Consumer<Result> sink;

    public CudaChecks(CudaKernels kernels, long seed, Consumer<Result> sink) {
        this.k = kernels;
        this.ctx = kernels.context();
        this.rnd = new Random(seed);
        this.sink = sink;
    }

    public List<Result> results() {
        return results;
    }

    private Result record(String check, String shape, double[] out, double[] ref, double tol, float ms, String note) {
        double num = 0;
        double den = 0;
        double max = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = out[i] - ref[i];
            if (Double.isNaN(out[i])) {
                num = Double.NaN;
            }
            num += d * d;
            den += ref[i] * ref[i];
            max = Math.max(max, Math.abs(d));
        }
        Result r = new Result(check, shape, Math.sqrt(num / Math.max(den, 1e-30)), Double.isNaN(num) ? Double.NaN : max,
                tol, ms, note);
        results.add(r);
        sink.accept(r);
        return r;
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    /** Random bf16 values: the bits, and their exact float values. */
    private short[] randomBf16(int n, double scale, float[] exact) {
        short[] b = new short[n];
        for (int i = 0; i < n; i++) {
            b[i] = FloatCodec.floatToBf16((float) (rnd.nextGaussian() * scale));
            exact[i] = FloatCodec.bf16ToFloat(b[i]);
        }
        return b;
    }

    private DeviceBuffer bf16Buffer(String name, short[] bits) {
        DeviceBuffer d = ctx.allocate(name, 2L * Math.max(bits.length, 2));
        d.upload(0, Pointer.to(bits), 2L * bits.length);
        return d;
    }

    private DeviceBuffer intBuffer(String name, int[] v) {
        DeviceBuffer d = ctx.allocate(name, 4L * Math.max(v.length, 1));
        d.upload(0, Pointer.to(v), 4L * v.length);
        return d;
    }

    private DeviceBuffer floatBuffer(String name, float[] v) {
        DeviceBuffer d = ctx.allocate(name, 4L * Math.max(v.length, 1));
        d.upload(0, Pointer.to(v), 4L * v.length);
        return d;
    }

    private static double[] fromBf16(short[] bits) {
        double[] d = new double[bits.length];
        for (int i = 0; i < bits.length; i++) {
            d[i] = FloatCodec.bf16ToFloat(bits[i]);
        }
        return d;
    }

    private static double[] fromFloats(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private static short[] downloadBf16(DeviceBuffer b, int n) {
        return b.downloadShorts(0, n);
    }

    // ---- kernels ------------------------------------------------------------------------------------------------

    /** How a GEMM check calls the kernels. */
    enum GemmPath {
        /** {@link CudaKernels#gemm}: the backend's dispatch by M. */
        AUTO("gemm_bf16_"),
        /** {@link CudaKernels#gemmSkinny}. */
        SKINNY("gemm_skinny_"),
        /** {@link CudaKernels#gemmSplit} (M 1..32; the dispatch uses it for 17..32). */
        SPLIT("gemm_split32_"),
        /** {@link CudaKernels#gemmDual}: two mma row tiles per warp (M 1..32; a tuner candidate for 17..32). */
        DUAL("gemm_dual32_"),
        /** {@link CudaKernels#gemmPipe}: split's block with a continuous weight stream (a tuner candidate). */
        PIPE("gemm_pipe32_"),
        /** The tiled GEMM with 128 x 128 tiles, whatever the size. */
        TILED128("gemm128_bf16_"),
        /** {@link CudaKernels#gemmWgmma}: the sm_90a wgmma GEMM, whatever the size. */
        WGMMA("gemm_wgmma_bf16_");

        final String label;

        GemmPath(String label) {
            this.label = label;
        }
    }

    /** C = A . W^T at (m, n, kDim), fp32 or bf16 out, through the backend's dispatch. */
    public Result gemm(int m, int n, int kDim, boolean f32Out) {
        return gemm(GemmPath.AUTO, m, n, kDim, f32Out, 1);
    }

    /** The skinny (decode) GEMM directly, any M in [1, 32]. */
    public Result gemmSkinny(int m, int n, int kDim, boolean f32Out) {
        return gemm(GemmPath.SKINNY, m, n, kDim, f32Out, 1);
    }

    /** The skinny GEMM directly with {@code warps} per block (4, 8, 16: the tuner's candidates), any M in [1, 32]. */
    public Result gemmSkinnyWarps(int m, int n, int kDim, boolean f32Out, int warps) {
        return gemm(GemmPath.SKINNY, m, n, kDim, f32Out, 1, warps);
    }

    /**
     * The split GEMM directly, any M in [1, 32], with {@code slices} K slices (0: the host's choice). Runs twice on
     * re-poisoned output: the two results must be bit-identical (the note says so, or FAILs), and a slicing above 1
     * that fell back to 1 (cluster launch refused) FAILs.
     */
    public Result gemmSplit(int m, int n, int kDim, boolean f32Out, int slices) {
        return gemm(GemmPath.SPLIT, m, n, kDim, f32Out, 1, slices);
    }

    /** gemm_dual32 directly, any M in [1, 32]; runs twice, bit-identical (as the split rows). */
    public Result gemmDual(int m, int n, int kDim, boolean f32Out) {
        return gemm(GemmPath.DUAL, m, n, kDim, f32Out, 1, 0);
    }

    /** gemm_pipe32 directly, any M in [1, 32], {@code slices} K slices (0: the host's heuristic); runs twice. */
    public Result gemmPipe(int m, int n, int kDim, boolean f32Out, int slices) {
        return gemm(GemmPath.PIPE, m, n, kDim, f32Out, 1, slices);
    }

    private Result gemm(GemmPath path, int m, int n, int kDim, boolean f32Out, int reps) {
        return gemm(path, m, n, kDim, f32Out, reps, 0);
    }

    /** Raw output bits (bf16 widened, or fp32 words), for bitwise comparisons. */
    private static int[] rawBits(DeviceBuffer c, int count, boolean f32Out) {
        if (f32Out) {
            return c.downloadInts(count);
        }
        short[] h = c.downloadShorts(0, count);
        int[] r = new int[count];
        for (int i = 0; i < count; i++) {
            r[i] = h[i] & 0xFFFF;
        }
        return r;
    }

    private static int differing(int[] x, int[] y) {
        int d = 0;
        for (int i = 0; i < x.length; i++) {
            if (x[i] != y[i]) {
                d++;
            }
        }
        return d;
    }

    /** The note of a split-GEMM row: slices used, and FAIL when a requested slicing fell back. */
    private String splitNote(int asked, int used) {
        String s = "S=" + used + (used > 1 ? " (cluster)" : "");
        if (asked > 1 && used != asked) {
            return "FAIL: asked S=" + asked + ", ran S=" + used + ": cluster launch refused: " + k.clusterRefusal();
        }
        return s;
    }

    /**
     * @param reps   launches timed together (the ms column is per launch); with a weight larger than the L2 cache the
     *               note gives the weight-streaming rate
     * @param slices K slices of the split path (0: the host's choice); ignored by the other paths
     */
    private Result gemm(GemmPath path, int m, int n, int kDim, boolean f32Out, int reps, int slices) {
        float[] a = new float[m * kDim];
        float[] w = new float[n * kDim];
        short[] ab = randomBf16(a.length, 1.0, a);
        short[] wb = randomBf16(w.length, 1.0 / Math.sqrt(kDim), w);
        double[] ref = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int t = 0; t < kDim; t++) {
                    s += (double) a[i * kDim + t] * w[j * kDim + t];
                }
                ref[i * n + j] = s;
            }
        }
        try (DeviceBuffer da = bf16Buffer("A", ab); DeviceBuffer dw = bf16Buffer("W", wb);
             DeviceBuffer dc = ctx.allocate("C", (f32Out ? 4L : 2L) * m * n + 4)) {
            if (f32Out) {
                dc.fill32(NAN_F32);
            } else {
                dc.fill16(NAN_BF16);
            }
            int[] used = {0};
            Runnable call = () -> {
                if (path == GemmPath.SPLIT) {
                    used[0] = slices == 0 ? k.gemmSplit(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out)
                            : k.gemmSplit(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out, slices);
                } else if (path == GemmPath.PIPE) {
                    used[0] = slices == 0 ? k.gemmPipe(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out)
                            : k.gemmPipe(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out, slices);
                } else if (path == GemmPath.DUAL) {
                    k.gemmDual(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out);
                    used[0] = 1;
                } else if (path == GemmPath.SKINNY) {
                    k.gemmSkinny(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out, slices);
                } else if (path == GemmPath.TILED128) {
                    k.gemmTiled(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out, 128);
                } else if (path == GemmPath.WGMMA) {
                    k.gemmWgmma(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out);
                } else {
                    k.gemm(da, dw, dc, m, n, kDim, f32Out);
                }
            };
            float ms = ctx.timeMillis(() -> {
                for (int r = 0; r < reps; r++) {
                    call.run();
                }
            }) / reps;
            double[] out = f32Out ? fromFloats(dc.downloadFloats(m * n)) : fromBf16(downloadBf16(dc, m * n));
            String note = reps > 1 ? String.format(java.util.Locale.ROOT, "weights %.0f GB/s", 2.0 * n * kDim / ms / 1e6)
                    : path == GemmPath.AUTO ? "via " + k.gemmKernelFor(m, n, kDim, f32Out)
                    : path == GemmPath.SKINNY && slices != 0 ? "W=" + k.skinnyWarps(n, kDim, slices) : null;
            if (path == GemmPath.SPLIT || path == GemmPath.PIPE || path == GemmPath.DUAL
                    || (path == GemmPath.SKINNY && slices != 0)) {
                // determinism: the same product again on re-poisoned output, bit for bit
                int[] first = rawBits(dc, m * n, f32Out);
                if (f32Out) {
                    dc.fill32(NAN_F32);
                } else {
                    dc.fill16(NAN_BF16);
                }
                call.run();
                int diff = differing(first, rawBits(dc, m * n, f32Out));
                String split = path == GemmPath.DUAL ? "dual" : path == GemmPath.SKINNY ? "W="
                        + k.skinnyWarps(n, kDim, slices) : splitNote(slices, used[0]);
                note = split.startsWith("FAIL") ? split : diff > 0 ? "FAIL: " + diff + " of " + m * n
                        + " outputs differ between two runs (" + split + ")" : split + ", 2 runs bit-identical"
                        + (note == null ? "" : "; " + note);
            }
            return record(path.label + (f32Out ? "f32" : "bf16"), m + "x" + n + "x" + kDim, out, ref,
                    f32Out ? TOL_F32 : TOL_BF16, ms, note);
        }
    }

    /**
     * Decode GEMMs of one weight shape larger than the L2 cache, one row per (path, M): a warm-up launch, then
     * {@code reps} launches timed together (ms column per launch; note: weight GB/s and us per launch, slices of the
     * split path). Checked on 256 sampled outputs against float64, plus: no NaN left anywhere, and the output after
     * the timed launches bit-identical to the one after the warm-up. The weight repeats a block of 2,039 random rows
     * (host generation time); its device size is the full N x K, so every launch streams it from HBM.
     *
     * @param ms    token rows per row of the table
     * @param paths the path of each row (SKINNY, SPLIT or AUTO)
     */
    public void gemmStreaming(int n, int kDim, boolean f32Out, int reps, int[] ms, GemmPath[] paths) {
        int base = Math.min(n, 2039);
        int maxM = Arrays.stream(ms).max().orElse(1);
        float[] w = new float[base * kDim];
        short[] wb = randomBf16(w.length, 1.0 / Math.sqrt(kDim), w);
        float[] a = new float[maxM * kDim];
        short[] ab = randomBf16(a.length, 1.0, a);
        try (DeviceBuffer da = bf16Buffer("A", ab); DeviceBuffer dw = ctx.allocate("W", 2L * n * kDim);
             DeviceBuffer dc = ctx.allocate("C", (f32Out ? 4L : 2L) * maxM * n + 4)) {
            for (long r0 = 0; r0 < n; r0 += base) {
                long rows = Math.min(base, n - r0);
                dw.upload(2L * r0 * kDim, Pointer.to(wb), 2L * rows * kDim);
            }
            for (int row = 0; row < ms.length; row++) {
                int m = ms[row];
                GemmPath path = paths[row];
                if (f32Out) {
                    dc.fill32(NAN_F32);
                } else {
                    dc.fill16(NAN_BF16);
                }
                int[] used = {0};
                Runnable call = () -> {
                    if (path == GemmPath.SPLIT) {
                        used[0] = k.gemmSplit(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out);
                    } else if (path == GemmPath.PIPE) {
                        used[0] = k.gemmPipe(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out);
                    } else if (path == GemmPath.DUAL) {
                        k.gemmDual(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out);
                    } else if (path == GemmPath.SKINNY) {
                        k.gemmSkinny(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out);
                    } else {
                        k.gemm(da, dw, dc, m, n, kDim, f32Out);
                    }
                };
                call.run();
                int[] warm = rawBits(dc, m * n, f32Out);
                float msPer = ctx.timeMillis(() -> {
                    for (int r = 0; r < reps; r++) {
                        call.run();
                    }
                }) / reps;
                int[] bits = rawBits(dc, m * n, f32Out);
                int nan = 0;
                for (int v : bits) {
                    if (f32Out ? Float.isNaN(Float.intBitsToFloat(v)) : Float.isNaN(FloatCodec.bf16ToFloat((short) v))) {
                        nan++;
                    }
                }
                int diff = differing(warm, bits);
                double[] out = new double[256];
                double[] ref = new double[256];
                for (int i = 0; i < out.length; i++) {
                    int r = rnd.nextInt(m);
                    int c = rnd.nextInt(n);
                    int wr = c % base;
                    double sum = 0;
                    for (int t = 0; t < kDim; t++) {
                        sum += (double) a[r * kDim + t] * w[wr * kDim + t];
                    }
                    ref[i] = sum;
                    int v = bits[r * n + c];
                    out[i] = f32Out ? Float.intBitsToFloat(v) : FloatCodec.bf16ToFloat((short) v);
                }
                String rate = String.format(java.util.Locale.ROOT, "weights %.0f GB/s, %.1f us", 2.0 * n * kDim / msPer
                        / 1e6, msPer * 1e3);
                String note = nan > 0 ? "FAIL: " + nan + " outputs unwritten (NaN)"
                        : diff > 0 ? "FAIL: " + diff + " outputs differ between warm-up and timed runs"
                        : path == GemmPath.SPLIT || path == GemmPath.PIPE ? "S=" + used[0] + ", " + rate + ", "
                                + (reps + 1) + " runs bit-identical"
                        : path == GemmPath.AUTO && m >= 1 && m <= CudaKernels.SKINNY_MAX_M
                                ? rate + ", via " + k.gemmKernelFor(m, n, kDim, f32Out)
                        : rate;
                String label = path == GemmPath.AUTO ? "gemm (dispatch) " : path.label;
                record(label + (f32Out ? "f32" : "bf16"), m + "x" + n + "x" + kDim, out, ref,
                        f32Out ? TOL_F32 : TOL_BF16, msPer, note);
            }
        }
    }

    /**
     * A prefill-sized GEMM through the backend's dispatch, timed over {@code reps} launches; checked on sampled
     * outputs (a full fp64 reference would take minutes here). The note gives TFLOP/s.
     */
    public Result gemmThroughput(int m, int n, int kDim, int reps) {
        return gemmThroughput(GemmPath.AUTO, m, n, kDim, false, reps);
    }

    /** ms per launch of the last {@link #gemmThroughput} row of the 128 x 128 mma.sync GEMM, by shape. */
    private final java.util.Map<String, Float> tiled128Ms = new java.util.HashMap<>();

    /**
     * A prefill-sized GEMM on the given path (AUTO: the backend's dispatch, its kernel named in the note), one
     * warm-up launch, then {@code reps} timed launches; outputs NaN-poisoned first (any NaN left fails the row),
     * 512 random outputs plus the four corners checked against an fp64 reference. W is a random 1,000-row block
     * repeated down its N rows (distinct memory, so the timing streams the whole weight as the model does; 1,000 is
     * no multiple of a tile, so a tile that read the wrong rows would still differ). The note gives TFLOP/s, and on
     * the wgmma rows the speed-up over the gemm128 row of the same shape when that ran first.
     */
    private Result gemmThroughput(GemmPath path, int m, int n, int kDim, boolean f32Out, int reps) {
        int block = Math.min(n, 1000);
        float[] a = new float[m * kDim];
        float[] w = new float[block * kDim];
        short[] ab = randomBf16(a.length, 1.0, a);
        short[] wb = randomBf16(w.length, 1.0 / Math.sqrt(kDim), w);
        String shape = m + "x" + n + "x" + kDim + (f32Out ? " f32 out" : "");
        try (DeviceBuffer da = bf16Buffer("A", ab); DeviceBuffer dw = ctx.allocate("W", 2L * n * kDim);
             DeviceBuffer dc = ctx.allocate("C", (f32Out ? 4L : 2L) * m * n + 4)) {
            for (int r0 = 0; r0 < n; r0 += block) {
                int rows = Math.min(block, n - r0);
                dw.upload(2L * r0 * kDim, Pointer.to(wb), 2L * rows * kDim);
            }
            if (f32Out) {
                dc.fill32(NAN_F32);
            } else {
                dc.fill16(NAN_BF16);
            }
            Runnable call = () -> {
                if (path == GemmPath.TILED128) {
                    k.gemmTiled(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out, 128);
                } else if (path == GemmPath.WGMMA) {
                    k.gemmWgmma(da, dw, dc, m, n, kDim, kDim, kDim, n, f32Out);
                } else {
                    k.gemm(da, dw, dc, m, n, kDim, f32Out);
                }
            };
            call.run();  // warm-up
            float ms = ctx.timeMillis(() -> {
                for (int r = 0; r < reps; r++) {
                    call.run();
                }
            }) / reps;
            float[] outF = f32Out ? dc.downloadFloats(m * n) : null;
            short[] outB = f32Out ? null : downloadBf16(dc, m * n);
            int nan = 0;
            for (int i = 0; i < m * n; i++) {
                if (Float.isNaN(f32Out ? outF[i] : FloatCodec.bf16ToFloat(outB[i]))) {
                    nan++;
                }
            }
            int samples = 516;
            double[] out = new double[samples];
            double[] ref = new double[samples];
            for (int i = 0; i < samples; i++) {
                int r = i < 4 ? (i & 1) * (m - 1) : rnd.nextInt(m);
                int c = i < 4 ? (i >> 1) * (n - 1) : rnd.nextInt(n);
                int wr = c % block;
                double sum = 0;
                for (int t = 0; t < kDim; t++) {
                    sum += (double) a[r * kDim + t] * w[wr * kDim + t];
                }
                ref[i] = sum;
                out[i] = f32Out ? outF[r * n + c] : FloatCodec.bf16ToFloat(outB[r * n + c]);
            }
            double tflops = 2.0 * m * n * kDim / ms / 1e9;
            String note;
            if (nan > 0) {
                note = "FAIL: " + nan + " outputs unwritten (NaN)";
            } else {
                note = String.format(java.util.Locale.ROOT, "%.0f TFLOP/s", tflops);
                if (path == GemmPath.AUTO) {
                    note += " (" + k.gemmKernelFor(m, n) + ")";
                } else if (path == GemmPath.TILED128) {
                    tiled128Ms.put(shape, ms);
                } else if (tiled128Ms.containsKey(shape)) {
                    note += String.format(java.util.Locale.ROOT, ", %.2fx gemm128", tiled128Ms.get(shape) / ms);
                }
            }
            String check = path == GemmPath.AUTO ? "gemm (prefill, sampled check)"
                    : path == GemmPath.TILED128 ? "gemm128 (prefill, sampled check)"
                    : "gemm_wgmma (prefill, sampled check)";
            return record(check, shape, out, ref, f32Out ? TOL_F32 : TOL_BF16, ms, note);
        }
    }

    /** A row that says a check did not run here (passes: nothing was wrong, nothing was tested). */
    private Result skipped(String check, String why) {
        Result r = new Result(check, "-", 0, 0, 0, 0, "skipped: " + why);
        results.add(r);
        sink.accept(r);
        return r;
    }

    /**
     * The wgmma GEMM (sm_90a): full fp64 references at edges in M (300 = 2 tiles + 44 rows; 77; 129), N (1000: a
     * partial 256-wide tile; 1001 and 131: odd, scalar stores; 1024: whole tiles), K (192 = 3 k-steps; 4096; 200,
     * 1032 and 72: a zero-filled k tail), both outputs; then the 8b prefill shapes timed next to the 128 x 128
     * mma.sync GEMM. Skipped rows where it is not available (not an H100/H200, or -Ddistserve.cuda.wgmma=false).
     */
    public void wgmmaGemm(boolean timing) {
        if (!k.wgmmaAvailable()) {
            skipped("gemm_wgmma_*", k.wgmmaUnavailableReason());
            return;
        }
        gemm(GemmPath.WGMMA, 300, 1000, 4096, true, 1);
        gemm(GemmPath.WGMMA, 300, 1024, 4096, false, 1);
        gemm(GemmPath.WGMMA, 300, 1000, 192, false, 1);
        gemm(GemmPath.WGMMA, 300, 1024, 192, true, 1);
        gemm(GemmPath.WGMMA, 77, 131, 200, true, 1);
        gemm(GemmPath.WGMMA, 129, 1001, 1032, false, 1);
        gemm(GemmPath.WGMMA, 257, 520, 72, true, 1);
        if (timing) {
            // qwen3-8b's layer GEMMs over a 2,048-token prefill: gate|up, qkv, down (fp32 out), o_proj (fp32 out)
            int[][] shapes = {{2048, 24576, 4096, 0}, {2048, 6144, 4096, 0}, {2048, 4096, 12288, 1},
                    {2048, 4096, 4096, 1}};
            for (int[] sh : shapes) {
                gemmThroughput(GemmPath.TILED128, sh[0], sh[1], sh[2], sh[3] == 1, 10);
                gemmThroughput(GemmPath.WGMMA, sh[0], sh[1], sh[2], sh[3] == 1, 10);
            }
        }
    }

    /** Embedding gather, then add_rmsnorm with and without delta, and the gathering final-norm form. */
    public void embeddingAndNorm(int vocab, int hidden, int n) {
        float[] table = new float[vocab * hidden];
        short[] tb = randomBf16(table.length, 1.0, table);
        float[] w = new float[hidden];
        short[] wb = randomBf16(hidden, 0.2, w);
        for (int i = 0; i < hidden; i++) {
            w[i] += 1f;
            wb[i] = FloatCodec.floatToBf16(w[i]);
            w[i] = FloatCodec.bf16ToFloat(wb[i]);
        }
        int[] tokens = new int[n];
        for (int i = 0; i < n; i++) {
            tokens[i] = rnd.nextInt(vocab);
        }
        float[] delta = new float[n * hidden];
        for (int i = 0; i < delta.length; i++) {
            delta[i] = (float) rnd.nextGaussian();
        }
        int rows = Math.max(1, n / 3);
        int[] rowIdx = new int[rows];
        for (int i = 0; i < rows; i++) {
            rowIdx[i] = rnd.nextInt(n);
        }
        double eps = 1e-6;
        try (DeviceBuffer dt = bf16Buffer("table", tb); DeviceBuffer dw = bf16Buffer("w", wb);
             DeviceBuffer dtok = intBuffer("tokens", tokens); DeviceBuffer dd = floatBuffer("delta", delta);
             DeviceBuffer drow = intBuffer("rows", rowIdx);
             DeviceBuffer x = ctx.allocate("x", 4L * n * hidden); DeviceBuffer out = ctx.allocate("out", 2L * n * hidden)) {
            x.fill32(NAN_F32);
            float ms = ctx.timeMillis(() -> k.embedding(dt, dtok, x, n, hidden));
            double[] refX = new double[n * hidden];
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < hidden; i++) {
                    refX[t * hidden + i] = table[tokens[t] * hidden + i];
                }
            }
            record("embedding_gather", n + "x" + hidden, fromFloats(x.downloadFloats(n * hidden)), refX, 0, ms, null);

            out.fill16(NAN_BF16);
            ms = ctx.timeMillis(() -> k.addRmsNorm(x, null, dw, out, null, n, hidden, (float) eps, true));
            record("add_rmsnorm (no delta)", n + "x" + hidden, fromBf16(downloadBf16(out, n * hidden)),
                    normRef(refX, w, null, n, hidden, eps), TOL_BF16, ms, null);

            out.fill16(NAN_BF16);
            ms = ctx.timeMillis(() -> k.addRmsNorm(x, dd, dw, out, null, n, hidden, (float) eps, true));
            double[] sum = refX.clone();
            for (int i = 0; i < sum.length; i++) {
                sum[i] += delta[i];
            }
            record("add_rmsnorm (x += delta)", n + "x" + hidden, fromBf16(downloadBf16(out, n * hidden)),
                    normRef(sum, w, null, n, hidden, eps), TOL_BF16, ms, null);
            record("add_rmsnorm residual", n + "x" + hidden, fromFloats(x.downloadFloats(n * hidden)), sum, 1e-6, 0,
                    null);

            out.fill16(NAN_BF16);
            ms = ctx.timeMillis(() -> k.addRmsNorm(x, dd, dw, out, drow, rows, hidden, (float) eps, false));
            double[] sum2 = sum.clone();
            for (int i = 0; i < sum2.length; i++) {
                sum2[i] += delta[i];
            }
            record("add_rmsnorm (gather rows)", rows + " of " + n + "x" + hidden,
                    fromBf16(downloadBf16(out, rows * hidden)), normRef(sum2, w, rowIdx, rows, hidden, eps), TOL_BF16,
                    ms, null);
        }
    }

    private static double[] normRef(double[] x, float[] w, int[] rowIdx, int rows, int hidden, double eps) {
        double[] o = new double[rows * hidden];
        for (int r = 0; r < rows; r++) {
            int s = rowIdx == null ? r : rowIdx[r];
            double ss = 0;
            for (int i = 0; i < hidden; i++) {
                ss += x[s * hidden + i] * x[s * hidden + i];
            }
            double inv = 1 / Math.sqrt(ss / hidden + eps);
            for (int i = 0; i < hidden; i++) {
                o[r * hidden + i] = w[i] * x[s * hidden + i] * inv;
            }
        }
        return o;
    }

    public Result siluMul(int n, int inter) {
        float[] gu = new float[n * 2 * inter];
        short[] gb = randomBf16(gu.length, 2.0, gu);
        double[] ref = new double[n * inter];
        for (int t = 0; t < n; t++) {  // gate|up as the interleaved weight's GEMM writes it (CudaKernels.siluMul)
            for (int i = 0; i < inter; i++) {
                double g = gu[t * 2 * inter + CudaKernels.interleavedGateUpRow(i, false)];
                ref[t * inter + i] = g / (1 + Math.exp(-g)) * gu[t * 2 * inter + CudaKernels.interleavedGateUpRow(i, true)];
            }
        }
        try (DeviceBuffer d = bf16Buffer("gu", gb); DeviceBuffer o = ctx.allocate("act", 2L * n * inter + 4)) {
            o.fill16(NAN_BF16);
            float ms = ctx.timeMillis(() -> k.siluMul(d, o, n, inter));
            return record("silu_mul", n + "x" + inter, fromBf16(downloadBf16(o, n * inter)), ref, TOL_BF16, ms, null);
        }
    }

    /** Of several (output, reference) pairs, the one with the largest absolute difference (NaN: infinite). */
    private static final class WorstCase {
        private double err = -1;
        double[] out = new double[0];
        double[] ref = new double[0];

        void offer(double[] o, double[] r) {
            double e = 0;
            for (int i = 0; i < r.length; i++) {
                e = Math.max(e, Double.isNaN(o[i]) ? Double.POSITIVE_INFINITY : Math.abs(o[i] - r[i]));
            }
            if (e > err) {
                err = e;
                out = o;
                ref = r;
            }
        }
    }

    /** paged_attention's split counters for n tokens, zeroed (as the backend's scratch holds them). */
    private DeviceBuffer splitCounters(int n, int heads) {
        DeviceBuffer d = ctx.allocate("split_done", 4 * CudaKernels.splitDoneInts(n, heads));
        d.fill32(0);
        return d;
    }

    /**
     * The gate|up GEMM with the activation in its epilogue (gemm_skinny*_silu with W warps, gemm_dual32_silu)
     * against the same GEMM writing gate|up followed by silu_mul: bit for bit, at every M given, on an interleaved
     * gate|up weight of 2 inter x K; the error column is against float64 silu(gate) * up of the bf16-rounded sums.
     */
    public Result gemmSiluFused(int inter, int kDim, int[] ms, CudaKernels.Gemm32Choice... choices) {
        int n = 2 * inter;
        int maxM = Arrays.stream(ms).max().orElse(1);
        float[] a = new float[maxM * kDim];
        float[] w = new float[n * kDim];
        short[] ab = randomBf16(a.length, 1.0, a);
        short[] wb = randomBf16(w.length, 0.05, w);
        List<String> notes = new ArrayList<>();
        int bad = 0;
        WorstCase worst = new WorstCase();
        float msFused = 0;
        try (DeviceBuffer da = bf16Buffer("a", ab); DeviceBuffer dw = bf16Buffer("w", wb);
             DeviceBuffer gu = ctx.allocate("gu", 2L * maxM * n); DeviceBuffer act = ctx.allocate("act", 2L * maxM * inter);
             DeviceBuffer act2 = ctx.allocate("act2", 2L * maxM * inter)) {
            for (CudaKernels.Gemm32Choice c : choices) {
                for (int m : ms) {
                    act.fill16(NAN_BF16);
                    act2.fill16(NAN_BF16);
                    k.gemm32(c, da, dw, gu, m, n, kDim, kDim, kDim, n, false);
                    k.siluMul(gu, act, m, inter);
                    float t = ctx.timeMillis(() -> k.gemmSiluFused(c, da, dw, act2, m, inter, kDim));
                    int[] unfused = rawBits(act, m * inter, false);
                    int[] fused = rawBits(act2, m * inter, false);
                    int d = differing(unfused, fused);
                    bad += d;
                    if (d > 0) {
                        notes.add(c + " M " + m + ": " + d + " differ");
                    }
                    // float64 reference from the stored gate|up (itself checked by the GEMM rows)
                    double[] g = fromBf16(downloadBf16(gu, m * n));
                    double[] ref = new double[m * inter];
                    for (int r = 0; r < m; r++) {
                        for (int i = 0; i < inter; i++) {
                            double gate = g[r * n + CudaKernels.interleavedGateUpRow(i, false)];
                            double up = g[r * n + CudaKernels.interleavedGateUpRow(i, true)];
                            ref[r * inter + i] = gate / (1 + Math.exp(-gate)) * up;
                        }
                    }
                    double[] out = fromBf16(downloadBf16(act2, m * inter));
                    worst.offer(out, ref);
                    msFused = t;
                }
            }
        }
        String note = bad == 0 ? "fused == gemm + silu_mul bit for bit (" + Arrays.toString(choices) + " x M "
                + Arrays.toString(ms) + ")" : "FAIL: " + String.join("; ", notes);
        return record("gemm gate|up + silu epilogue", Arrays.stream(ms).max().orElse(1) + "x" + inter + "x" + kDim,
                worst.out, worst.ref, TOL_BF16, msFused, note);
    }

    /**
     * o_proj / down_proj with the add + RMSNorm in the grid's last block (gemm_skinny8_f32_norm,
     * gemm_dual32_f32_norm) at M 1, three launches in a row on one counter (each must run the tail: the counter is
     * reset by the last block): delta and x bit for bit against the GEMM + add_rmsnorm path; xn against float64
     * (its block reduction is cut differently, so its last bits may differ).
     */
    public Result gemmNormFused(int hidden, int kDim, CudaKernels.Gemm32Choice... choices) {
        int m = 1;
        float[] a = new float[m * kDim];
        float[] w = new float[hidden * kDim];
        float[] nw = new float[hidden];
        float[] x0 = new float[m * hidden];
        short[] ab = randomBf16(a.length, 1.0, a);
        short[] wb = randomBf16(w.length, 0.05, w);
        short[] nb = randomBf16(nw.length, 1.0, nw);
        for (int i = 0; i < x0.length; i++) {
            x0[i] = (float) rnd.nextGaussian();
        }
        List<String> notes = new ArrayList<>();
        WorstCase worst = new WorstCase();
        float msFused = 0;
        try (DeviceBuffer da = bf16Buffer("a", ab); DeviceBuffer dw = bf16Buffer("w", wb);
             DeviceBuffer dn = bf16Buffer("norm_w", nb); DeviceBuffer x = floatBuffer("x", x0);
             DeviceBuffer delta = ctx.allocate("delta", 4L * m * hidden);
             DeviceBuffer xn = ctx.allocate("xn", 2L * m * hidden); DeviceBuffer counter = ctx.allocate("counter", 4)) {
            counter.fill32(0);
            for (CudaKernels.Gemm32Choice c : choices) {
                if (!k.normFusable(c, hidden, kDim)) {
                    notes.add(c + ": not fusable here (registers / block size)");
                    continue;
                }
                x.upload(x0);
                delta.fill32(NAN_F32);
                xn.fill16(NAN_BF16);
                k.gemm32(c, da, dw, delta, m, hidden, kDim, kDim, kDim, hidden, true);
                k.addRmsNorm(x, delta, dn, xn, null, m, hidden, 1e-6f, true);
                int[] deltaRef = rawBits(delta, m * hidden, true);
                int[] xRef = rawBits(x, m * hidden, true);
                for (int run = 0; run < 3; run++) {
                    x.upload(x0);
                    delta.fill32(NAN_F32);
                    xn.fill16(NAN_BF16);
                    float t = ctx.timeMillis(() -> k.gemmNormFused(c, da, dw, delta, m, hidden, kDim, x, dn, xn, 1e-6f,
                            counter));
                    int dd = differing(deltaRef, rawBits(delta, m * hidden, true));
                    int dx = differing(xRef, rawBits(x, m * hidden, true));
                    if (dd + dx > 0) {
                        notes.add(c + " run " + run + ": delta " + dd + ", x " + dx + " differ");
                    }
                    float[] xs = x.downloadFloats(m * hidden);
                    double[] ref = new double[m * hidden];
                    double ss = 0;
                    for (int i = 0; i < hidden; i++) {
                        ss += (double) xs[i] * xs[i];
                    }
                    double inv = 1 / Math.sqrt(ss / hidden + 1e-6);
                    for (int i = 0; i < hidden; i++) {
                        ref[i] = nw[i] * xs[i] * inv;
                    }
                    double[] out = fromBf16(downloadBf16(xn, m * hidden));
                    worst.offer(out, ref);
                    msFused = t;
                }
            }
            int left = counter.downloadInts(1)[0];
            if (left != 0) {
                notes.add("FAIL: counter left at " + left);
            }
        }
        boolean bad = notes.stream().anyMatch(n -> n.contains("differ") || n.startsWith("FAIL"));
        String note = (bad ? "FAIL: " : "delta and x == gemm + add_rmsnorm bit for bit, 3 launches each ("
                + Arrays.toString(choices) + ")") + (notes.isEmpty() ? "" : "; " + String.join("; ", notes));
        if (worst.ref.length == 0) {
            return record("gemm + add_rmsnorm tail", "1x" + hidden + "x" + kDim, new double[] {Double.NaN},
                    new double[] {0}, TOL_BF16, 0, "FAIL: no choice was fusable: " + note);
        }
        return record("gemm + add_rmsnorm tail", "1x" + hidden + "x" + kDim, worst.out, worst.ref, TOL_BF16,
                msFused, note);
    }

    /** A paged pool of random bf16 K/V, a shuffled block table per slice, and the slices' geometry. */
    private final class Pool implements AutoCloseable {
        final int layers = 2;
        final int layer = 1;
        final int kvHeads;
        final int hd;
        final int bs;
        final int numBlocks;
        final short[] bits;
        final DeviceBuffer dev;

        Pool(int kvHeads, int hd, int bs, int numBlocks) {
            this.kvHeads = kvHeads;
            this.hd = hd;
            this.bs = bs;
            this.numBlocks = numBlocks;
            long elems = (long) numBlocks * layers * 2 * kvHeads * bs * hd;
            float[] tmp = new float[(int) elems];
            bits = randomBf16(tmp.length, 1.0, tmp);
            dev = bf16Buffer("kv", bits);
        }

        int index(int block, int kv, int g, int slot, int d) {
            return (int) (((((long) block * layers + layer) * 2 + kv) * kvHeads + g) * bs * hd + (long) slot * hd + d);
        }

        float at(int[] table, int pos, int kv, int g, int d) {
            return FloatCodec.bf16ToFloat(bits[index(table[pos / bs], kv, g, pos % bs, d)]);
        }

        @Override
        public void close() {
            dev.close();
        }
    }

    private int[][] shuffledTables(int[] ends, int bs, int numBlocks) {
        List<Integer> free = new ArrayList<>();
        for (int b = 0; b < numBlocks; b++) {
            free.add(b);
        }
        java.util.Collections.shuffle(free, rnd);
        int[][] tables = new int[ends.length][];
        int next = 0;
        for (int s = 0; s < ends.length; s++) {
            tables[s] = new int[(ends[s] + bs - 1) / bs];
            for (int j = 0; j < tables[s].length; j++) {
                tables[s][j] = free.get(next++);
            }
        }
        return tables;
    }

    /**
     * q/k norm + RoPE + KV write: q output and the cache slots written (K normed and rotated, V as is); the rest
     * of the pool must be untouched.
     */
    public void qkNormRopeKvWrite(int heads, int kvHeads, int hd, int bs, boolean qkNorm) {
        int[] lens = {5, 1, 19};
        int[] starts = {0, 40, 7};
        int n = Arrays.stream(lens).sum();
        int[] ends = new int[lens.length];
        for (int s = 0; s < lens.length; s++) {
            ends[s] = starts[s] + lens[s];
        }
        int numBlocks = Arrays.stream(ends).map(e -> (e + bs - 1) / bs).sum() + 3;
        int[][] tables = shuffledTables(ends, bs, numBlocks);
        int[] positions = new int[n];
        int[] slots = new int[n];
        int t = 0;
        for (int s = 0; s < lens.length; s++) {
            for (int i = 0; i < lens[s]; i++, t++) {
                positions[t] = starts[s] + i;
                slots[t] = tables[s][positions[t] / bs] * bs + positions[t] % bs;
            }
        }
        int all = heads + 2 * kvHeads;
        float[] qkv = new float[n * all * hd];
        short[] qkvb = randomBf16(qkv.length, 1.0, qkv);
        float[] qn = new float[hd];
        float[] kn = new float[hd];
        short[] qnb = randomBf16(hd, 0.2, qn);
        short[] knb = randomBf16(hd, 0.2, kn);
        for (int i = 0; i < hd; i++) {
            qnb[i] = FloatCodec.floatToBf16(qn[i] + 1f);
            qn[i] = FloatCodec.bf16ToFloat(qnb[i]);
            knb[i] = FloatCodec.floatToBf16(kn[i] + 1f);
            kn[i] = FloatCodec.bf16ToFloat(knb[i]);
        }
        int maxPos = 64;
        int half = hd / 2;
        double theta = 1e6;
        float[] cos = new float[maxPos * half];
        float[] sin = new float[maxPos * half];
        for (int p = 0; p < maxPos; p++) {
            for (int i = 0; i < half; i++) {
                double ang = p / Math.pow(theta, 2.0 * i / hd);
                cos[p * half + i] = (float) Math.cos(ang);
                sin[p * half + i] = (float) Math.sin(ang);
            }
        }
        double eps = 1e-6;
        try (Pool pool = new Pool(kvHeads, hd, bs, numBlocks); DeviceBuffer dqkv = bf16Buffer("qkv", qkvb);
             DeviceBuffer dq = ctx.allocate("q", 2L * n * heads * hd); DeviceBuffer dpos = intBuffer("pos", positions);
             DeviceBuffer dslots = intBuffer("slots", slots); DeviceBuffer dqn = bf16Buffer("qn", qnb);
             DeviceBuffer dkn = bf16Buffer("kn", knb); DeviceBuffer dcos = floatBuffer("cos", cos);
             DeviceBuffer dsin = floatBuffer("sin", sin)) {
            dq.fill16(NAN_BF16);
            float ms = ctx.timeMillis(() -> k.qkNormRopeKvWrite(dqkv, dq, pool.dev, dpos, dslots,
                    qkNorm ? dqn : null, qkNorm ? dkn : null, dcos, dsin, n, heads, kvHeads, hd, pool.layer,
                    pool.layers, bs, (float) eps));
            double[] refQ = new double[n * heads * hd];
            short[] after = pool.dev.downloadShorts(0, pool.bits.length);
            short[] expectPool = pool.bits.clone();
            for (t = 0; t < n; t++) {
                for (int h = 0; h < all; h++) {
                    double[] v = new double[hd];
                    for (int i = 0; i < hd; i++) {
                        v[i] = qkv[(t * all + h) * hd + i];
                    }
                    int kind = h < heads ? 0 : h < heads + kvHeads ? 1 : 2;
                    if (kind < 2) {
                        float[] nw = kind == 0 ? qn : kn;
                        if (qkNorm) {
                            double ss = 0;
                            for (double x : v) {
                                ss += x * x;
                            }
                            double inv = 1 / Math.sqrt(ss / hd + eps);
                            for (int i = 0; i < hd; i++) {
                                v[i] = nw[i] * v[i] * inv;
                            }
                        }
                        double[] r = v.clone();
                        for (int i = 0; i < half; i++) {
                            double c = cos[positions[t] * half + i];
                            double s = sin[positions[t] * half + i];
                            r[i] = v[i] * c - v[i + half] * s;
                            r[i + half] = v[i + half] * c + v[i] * s;
                        }
                        v = r;
                    }
                    if (kind == 0) {
                        System.arraycopy(v, 0, refQ, (t * heads + h) * hd, hd);
                    } else {
                        int g = kind == 1 ? h - heads : h - heads - kvHeads;
                        int blk = slots[t] / bs;
                        for (int i = 0; i < hd; i++) {
                            expectPool[pool.index(blk, kind - 1, g, slots[t] % bs, i)] =
                                    FloatCodec.floatToBf16((float) v[i]);
                        }
                    }
                }
            }
            String shape = n + " tok, " + heads + "/" + kvHeads + " heads, hd " + hd + ", block " + bs
                    + (qkNorm ? ", q/k norm" : "");
            record("qk_norm_rope (q)", shape, fromBf16(downloadBf16(dq, n * heads * hd)), refQ, TOL_BF16, ms, null);
            int wrongOutside = 0;
            for (int i = 0; i < after.length; i++) {
                // elements written are compared by the error metric; all others must be bit-identical
                if (expectPool[i] == pool.bits[i] && after[i] != pool.bits[i]) {
                    wrongOutside++;
                }
            }
            record("kv_write (paged)", shape, fromBf16(after), fromBf16(expectPool), TOL_BF16, 0,
                    wrongOutside == 0 ? null : "FAIL: " + wrongOutside + " elements written outside the slots");
        }
    }

    /**
     * Paged causal GQA attention: slices of several lengths and start positions (prefill from 0, prefill continuing
     * a prefix, decodes with long contexts), shuffled block tables, with the planner's split choice and with
     * forced splits (split-KV + combine).
     */
    public void attention(int heads, int kvHeads, int hd, int bs, int forcedSplits) {
        attention(heads, kvHeads, hd, bs, forcedSplits, false);
    }

    /** @param fixedSplits the decode-graph plan: splits fixed by the grid, those past the context empty */
    public void attention(int heads, int kvHeads, int hd, int bs, int forcedSplits, boolean fixedSplits) {
        int[] lens = {37, 20, 1, 1, 1};
        int[] starts = {0, 50, 300, 0, 129};
        AttentionRun run = runAttention(heads, kvHeads, hd, bs, lens, starts, (sliceStart, maxEnd) -> {
            AttentionPlan plan = AttentionPlan.of(sliceStart, lens, starts, heads, kvHeads, ctx.smCount(), 32,
                    fixedSplits);
            return forcedSplits > 0 ? plan.withSplits(forcedSplits, maxEnd) : plan;
        });
        AttentionPlan plan = run.plan();
        record("paged_attention" + (plan.splits() > 1 ? " + split merge" : "") + (fixedSplits ? " (graph plan)" : ""),
                run.tokens() + " tok in " + lens.length + " slices (max ctx " + run.maxEnd() + "), " + heads + "/"
                        + kvHeads + " heads, hd " + hd + ", block " + bs + ", splits " + plan.splits() + " of "
                        + plan.splitLen(),
                run.got(), run.ref(), TOL_BF16, run.ms(), null);
    }

    /** One attention check's run: its plan, the NaN-poisoned output after the launch, and the float64 reference. */
    private record AttentionRun(AttentionPlan plan, int tokens, int maxEnd, double[] got, double[] ref, float ms) {
    }

    /**
     * Lays the slices ({@code lens} tokens from positions {@code starts}) out in a pool with shuffled block tables,
     * draws Q, runs {@link CudaKernels#attention} with the plan {@code planFor} gives (slice starts in the batch,
     * longest context) into a NaN-poisoned output and computes the float64 reference of every row.
     */
    private AttentionRun runAttention(int heads, int kvHeads, int hd, int bs, int[] lens, int[] starts,
                                      java.util.function.BiFunction<int[], Integer, AttentionPlan> planFor) {
        int s = lens.length;
        int n = Arrays.stream(lens).sum();
        int[] ends = new int[s];
        int[] sliceStart = new int[s];
        for (int i = 0, t = 0; i < s; t += lens[i], i++) {
            ends[i] = starts[i] + lens[i];
            sliceStart[i] = t;
        }
        int numBlocks = Arrays.stream(ends).map(e -> (e + bs - 1) / bs).sum() + 2;
        int[][] tables = shuffledTables(ends, bs, numBlocks);
        int stride = Arrays.stream(tables).mapToInt(a -> a.length).max().orElse(1);
        int[] flat = new int[s * stride];
        for (int i = 0; i < s; i++) {
            System.arraycopy(tables[i], 0, flat, i * stride, tables[i].length);
        }
        int maxEnd = Arrays.stream(ends).max().orElse(1);
        AttentionPlan plan = planFor.apply(sliceStart, maxEnd);
        float[] q = new float[n * heads * hd];
        short[] qb = randomBf16(q.length, 1.0, q);
        double scale = 1 / Math.sqrt(hd);
        try (Pool pool = new Pool(kvHeads, hd, bs, numBlocks); DeviceBuffer dq = bf16Buffer("q", qb);
             DeviceBuffer items = intBuffer("items", plan.itemTable()); DeviceBuffer dt = intBuffer("tables", flat);
             DeviceBuffer geom = intBuffer("geom", new int[] {plan.splitLen(), stride});
             DeviceBuffer out = ctx.allocate("out", 2L * n * heads * hd);
             DeviceBuffer partO = ctx.allocate("partO", 4L * Math.max(1, plan.splits()) * n * heads * hd);
             DeviceBuffer partML = ctx.allocate("partML", 8L * Math.max(1, plan.splits()) * n * heads);
             DeviceBuffer done = splitCounters(n, heads)) {
            out.fill16(NAN_BF16);
            float ms = ctx.timeMillis(() -> k.attention(dq, pool.dev, items, dt, geom, out, partO, partML, done, plan, n,
                    heads, kvHeads, hd, pool.layer, pool.layers, bs, (float) scale));
            double[] ref = attentionRef(q, pool, tables, lens, starts, sliceStart, heads, heads / kvHeads, hd, scale);
            return new AttentionRun(plan, n, maxEnd, fromBf16(downloadBf16(out, n * heads * hd)), ref, ms);
        }
    }

    /** float64 causal attention of every token of the slices (outputs [n][heads][hd]). */
    private static double[] attentionRef(float[] q, Pool pool, int[][] tables, int[] lens, int[] starts,
                                         int[] sliceStart, int heads, int group, int hd, double scale) {
        int n = Arrays.stream(lens).sum();
        double[] ref = new double[n * heads * hd];
        for (int i = 0; i < lens.length; i++) {
            for (int j = 0; j < lens[i]; j++) {
                for (int h = 0; h < heads; h++) {
                    attentionRefRow(q, pool, tables[i], sliceStart[i] + j, starts[i] + j, h, heads, group, hd, scale,
                            ref, (sliceStart[i] + j) * heads + h);
                }
            }
        }
        return ref;
    }

    /** float64 attention of token t (at position pos) and head h, into ref[outRow * hd ..]. */
    private static void attentionRefRow(float[] q, Pool pool, int[] table, int t, int pos, int h, int heads,
                                        int group, int hd, double scale, double[] ref, int outRow) {
        int g = h / group;
        double[] sc = new double[pos + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int p2 = 0; p2 <= pos; p2++) {
            double dot = 0;
            for (int d = 0; d < hd; d++) {
                dot += q[(t * heads + h) * hd + d] * pool.at(table, p2, 0, g, d);
            }
            sc[p2] = dot * scale;
            max = Math.max(max, sc[p2]);
        }
        double sum = 0;
        for (int p2 = 0; p2 <= pos; p2++) {
            sc[p2] = Math.exp(sc[p2] - max);
            sum += sc[p2];
        }
        for (int d = 0; d < hd; d++) {
            double o = 0;
            for (int p2 = 0; p2 <= pos; p2++) {
                o += sc[p2] * pool.at(table, p2, 1, g, d);
            }
            ref[outRow * hd + d] = o / sum;
        }
    }

    /**
     * Largest |out - ref| allowed in the attention_prefill rows (besides the relative error): P is rounded to bf16
     * (relative 2^-9) before P V while the row sum stays fp32, so an output moves by at most 2^-9 max|v| (~0.011
     * for |v| <= 5.5, the largest of ~10^6 unit gaussians), plus the bf16 rounding of the output itself (2^-9 |o|,
     * ~0.011): ~0.022 at worst. A causal-mask or paging error moves the short rows (1..16 keys) by O(0.1..1).
     */
    static final double PREFILL_MAX_ABS = 0.05;

    /**
     * The step's attention as the backend plans it ({@link AttentionPlan#forStep}): slices of at least 16 tokens on
     * the tensor-core attention_prefill, shorter ones on paged_attention, one {@link CudaKernels#attention} call
     * writing disjoint rows of one NaN-poisoned output; shuffled block tables; float64 reference over every row.
     * Tolerance: relative 1e-2 (TOL_BF16; expected ~2e-3: bf16 P and bf16 output, each ~1.1e-3 rms relative), and
     * max abs {@link #PREFILL_MAX_ABS}. FAILs too when no slice went to attention_prefill.
     */
    public Result attentionPrefill(int heads, int kvHeads, int hd, int bs, int[] lens, int[] starts) {
        AttentionRun run = runAttention(heads, kvHeads, hd, bs, lens, starts, (sliceStart, maxEnd) ->
                AttentionPlan.forStep(sliceStart, lens, starts, heads, kvHeads, hd, ctx.smCount(), 32));
        AttentionPlan plan = run.plan();
        double maxAbs = 0;
        for (int i = 0; i < run.ref().length; i++) {
            maxAbs = Math.max(maxAbs, Math.abs(run.got()[i] - run.ref()[i]));
        }
        StringBuilder sl = new StringBuilder();
        for (int i = 0; i < lens.length; i++) {
            sl.append(i == 0 ? "" : " ").append(lens[i]).append('@').append(starts[i]);
        }
        String note = plan.prefillItems() == 0 ? "FAIL: no slice went to attention_prefill"
                : maxAbs > PREFILL_MAX_ABS ? String.format(java.util.Locale.ROOT, "FAIL: max abs %.3g > %.2g",
                maxAbs, PREFILL_MAX_ABS)
                : String.format(java.util.Locale.ROOT, "%d prefill items (HG %d), %d paged items; max abs <= %.2g",
                plan.prefillItems(), plan.prefillHeadsPerBlock(), plan.items(), PREFILL_MAX_ABS);
        return record("attention_prefill" + (plan.items() > 0 ? " + paged (mixed)" : ""),
                "tok@pos " + sl + ", " + heads + "/" + kvHeads + " heads, hd " + hd + ", block " + bs, run.got(),
                run.ref(), TOL_BF16, run.ms(), note);
    }

    /**
     * Timing of one causal prefill of {@code tokens} tokens from position 0 (qwen3-8b: 2,048 tokens, 32/8 heads,
     * hd 128, block 64): first the old path (paged_attention alone, {@link AttentionPlan#of}), then
     * attention_prefill ({@link AttentionPlan#forStep}), each warmed up and timed over several launches, outputs
     * NaN-poisoned; checked on 256 sampled (token, head) rows against float64 and for unwritten (NaN) outputs
     * anywhere. TFLOP/s counts the causal half: 4 * T * T / 2 * hd * heads.
     */
    public void attentionPrefillTiming(int tokens, int heads, int kvHeads, int hd, int bs, int layers) {
        int numBlocks = (tokens + bs - 1) / bs + 2;
        int[][] tables = shuffledTables(new int[] {tokens}, bs, numBlocks);
        int[] one = {tokens};
        int[] zero = {0};
        AttentionPlan oldPlan = AttentionPlan.of(zero, one, zero, heads, kvHeads, ctx.smCount(), 32);
        AttentionPlan newPlan = AttentionPlan.forStep(zero, one, zero, heads, kvHeads, hd, ctx.smCount(), 32);
        float[] q = new float[tokens * heads * hd];
        short[] qb = randomBf16(q.length, 1.0, q);
        double scale = 1 / Math.sqrt(hd);
        int group = heads / kvHeads;
        int samples = 256;
        int[] rowT = new int[samples];
        int[] rowH = new int[samples];
        for (int i = 0; i < samples; i++) {
            rowT[i] = i == 0 ? 0 : i == 1 ? tokens - 1 : rnd.nextInt(tokens);
            rowH[i] = rnd.nextInt(heads);
        }
        double flops = 4.0 * tokens * tokens / 2 * hd * heads;
        String shape = tokens + " tok causal from 0, " + heads + "/" + kvHeads + " heads, hd " + hd + ", block " + bs;
        try (Pool pool = new Pool(kvHeads, hd, bs, numBlocks); DeviceBuffer dq = bf16Buffer("q", qb);
             DeviceBuffer dt = intBuffer("tables", tables[0]);
             DeviceBuffer out = ctx.allocate("out", 2L * tokens * heads * hd)) {
            double[] ref = new double[samples * hd];
            for (int i = 0; i < samples; i++) {
                attentionRefRow(q, pool, tables[0], rowT[i], rowT[i], rowH[i], heads, group, hd, scale, ref, i);
            }
            float oldMs = 0;
            for (int which = 0; which < 2; which++) {
                AttentionPlan plan = which == 0 ? oldPlan : newPlan;
                int reps = which == 0 ? 3 : 20;
                try (DeviceBuffer items = intBuffer("items", plan.itemTable());
                     DeviceBuffer geom = intBuffer("geom", new int[] {plan.splitLen(), tables[0].length});
                     DeviceBuffer partO = ctx.allocate("partO", 4L * Math.max(1, plan.splits()) * tokens * heads * hd);
                     DeviceBuffer partML = ctx.allocate("partML", 8L * Math.max(1, plan.splits()) * tokens * heads);
                     DeviceBuffer done = splitCounters(tokens, heads)) {
                    out.fill16(NAN_BF16);
                    Runnable call = () -> k.attention(dq, pool.dev, items, dt, geom, out, partO, partML, done, plan,
                            tokens,
                            heads, kvHeads, hd, pool.layer, pool.layers, bs, (float) scale);
                    call.run();  // warm-up (and the output checked below)
                    float ms = ctx.timeMillis(() -> {
                        for (int r = 0; r < reps; r++) {
                            call.run();
                        }
                    }) / reps;
                    short[] all = downloadBf16(out, tokens * heads * hd);
                    int nan = 0;
                    for (short v : all) {
                        if (Float.isNaN(FloatCodec.bf16ToFloat(v))) {
                            nan++;
                        }
                    }
                    double[] got = new double[samples * hd];
                    for (int i = 0; i < samples; i++) {
                        for (int d = 0; d < hd; d++) {
                            got[i * hd + d] = FloatCodec.bf16ToFloat(all[(rowT[i] * heads + rowH[i]) * hd + d]);
                        }
                    }
                    String rate = String.format(java.util.Locale.ROOT, "%.1f TFLOP/s (%.2f GFLOP); x%d layers %.1f ms",
                            flops / ms / 1e9, flops / 1e9, layers, ms * layers);
                    if (which == 0) {
                        oldMs = ms;
                        record("paged_attention (old prefill path, timing)", shape + ", " + plan.items() + " items",
                                got, ref, TOL_BF16, ms, nan > 0 ? "FAIL: " + nan + " outputs unwritten (NaN)" : rate);
                    } else {
                        record("attention_prefill (timing)", shape + ", " + plan.prefillItems() + " items", got, ref,
                                TOL_BF16, ms, nan > 0 ? "FAIL: " + nan + " outputs unwritten (NaN)"
                                        : plan.prefillItems() == 0 ? "FAIL: not dispatched to attention_prefill"
                                        : rate + String.format(java.util.Locale.ROOT, "; %.1fx the old path",
                                        oldMs / ms));
                    }
                }
            }
        }
    }

    public Result argmax(int rows, int vocab) {
        float[] logits = new float[rows * vocab];
        int[] ref = new int[rows];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < vocab; j++) {
                logits[r * vocab + j] = (float) rnd.nextGaussian();
            }
            int tie = rnd.nextInt(vocab);
            logits[r * vocab + tie] = 10f;
            logits[r * vocab + vocab - 1 - tie / 2] = 10f;  // a tie: the lower index must win
            ref[r] = Math.min(tie, vocab - 1 - tie / 2);
        }
        // rows where nothing exceeds -inf come back as -1 (the host decides them): all NaN, all -inf, and a mix
        int special = Math.min(rows, 3);
        for (int r = 0; r < special; r++) {
            for (int j = 0; j < vocab; j++) {
                logits[r * vocab + j] = r == 0 || (r == 2 && j % 2 == 0) ? Float.NaN : Float.NEGATIVE_INFINITY;
            }
            ref[r] = -1;
        }
        if (rows > special) {  // NaN never wins, even next to the maximum
            logits[special * vocab + (ref[special] == 0 ? 1 : 0)] = Float.NaN;
        }
        try (DeviceBuffer dl = floatBuffer("logits", logits); DeviceBuffer ids = ctx.allocate("ids", 4L * rows)) {
            ids.fill32(-2);
            float ms = ctx.timeMillis(() -> k.argmax(dl, ids, rows, vocab));
            int[] got = ids.downloadInts(rows);
            int wrong = 0;
            for (int r = 0; r < rows; r++) {
                if (got[r] != ref[r]) {
                    wrong++;
                }
            }
            Result res = new Result("argmax_rows", rows + "x" + vocab, wrong == 0 ? 0 : 1, wrong, 0, ms,
                    wrong == 0 ? null : "FAIL: " + wrong + " rows differ");
            results.add(res);
            sink.accept(res);
            return res;
        }
    }

    /**
     * sample_rows against {@link io.distserve.engine.sampling.RowSampling} (exact ids): base rows (gaussian logits
     * with a tied best pair; coarse logits full of ties; a row with NaN and -inf entries) times a grid of
     * (temperature, top-k, top-p, min-p), each with a fixed u. Ids poisoned with -2 before the run.
     */
    public Result sampleRows(int vocab) {
        float[] temps = {0f, 0.7f, 1.5f};
        int[] topKs = {0, 1, 50, 1024};
        float[] topPs = {1f, 0.8f, 1e-6f};
        float[] minPs = {0f, 0.1f, 1f};
        double[] us = {0.0, 0.37, 0.999999, 0.5};
        int bases = 3;
        float[][] base = new float[bases][vocab];
        for (int j = 0; j < vocab; j++) {
            base[0][j] = (float) (2 * rnd.nextGaussian());
            base[1][j] = Math.round(4 * rnd.nextGaussian()) * 0.5f;  // many exact ties everywhere
            base[2][j] = j % 97 == 3 ? Float.NaN : j % 89 == 5 ? Float.NEGATIVE_INFINITY : (float) rnd.nextGaussian();
        }
        int tie = rnd.nextInt(vocab - 1);
        base[0][tie] = 12f;
        base[0][vocab - 1 - tie / 2] = 12f;
        int combos = temps.length * topKs.length * topPs.length * minPs.length;
        int rows = combos * bases;
        float[] logits = new float[rows * vocab];
        float[] t = new float[rows];
        int[] kk = new int[rows];
        float[] pp = new float[rows];
        float[] mp = new float[rows];
        double[] u = new double[rows];
        int[] ref = new int[rows];
        int r = 0;
        for (float temp : temps) {
            for (int topK : topKs) {
                for (float topP : topPs) {
                    for (float minP : minPs) {
                        for (int b = 0; b < bases; b++) {
                            System.arraycopy(base[b], 0, logits, r * vocab, vocab);
                            t[r] = temp;
                            kk[r] = topK;
                            pp[r] = topP;
                            mp[r] = minP;
                            u[r] = us[r % us.length];
                            ref[r] = io.distserve.engine.sampling.RowSampling.sample(base[b].clone(), temp, topK,
                                    topP, minP, u[r]);
                            r++;
                        }
                    }
                }
            }
        }
        int[] words = CudaKernels.sampleParams(t, kk, pp, mp, u);
        try (DeviceBuffer dl = floatBuffer("logits", logits); DeviceBuffer dp = ctx.allocate("params", 4L * words.length);
             DeviceBuffer ids = ctx.allocate("ids", 4L * rows)) {
            dp.upload(words);
            ids.fill32(-2);
            k.sample(dl, dp, ids, rows, vocab);
            int[] got = ids.downloadInts(rows);
            int wrong = 0;
            String first = null;
            for (int i = 0; i < rows; i++) {
                if (got[i] != ref[i]) {
                    wrong++;
                    if (first == null) {
                        first = "row " + i + " (T " + t[i] + ", k " + kk[i] + ", p " + pp[i] + ", min-p " + mp[i]
                                + ", u " + u[i] + "): got " + got[i] + ", expected " + ref[i];
                    }
                }
            }
            // timing on fresh logits (the kernel overwrites its rows with weights)
            dl.upload(0, Pointer.to(logits), 4L * logits.length);
            float ms = ctx.timeMillis(() -> k.sample(dl, dp, ids, rows, vocab));
            Result res = new Result("sample_rows == RowSampling", rows + "x" + vocab + " (" + combos
                    + " settings x " + bases + " rows)", wrong == 0 ? 0 : 1, wrong, 0, ms,
                    wrong == 0 ? null : "FAIL: " + wrong + " rows differ; first " + first);
            results.add(res);
            sink.accept(res);
            return res;
        }
    }

    /**
     * repetition_penalty against the host's {@link io.distserve.engine.sampling.RepetitionPenalties#applyTo}, bit for
     * bit: rows without a penalty, penalties above and below 1, histories empty, short and long (4,000 ids with
     * repeats), ids outside the vocabulary, logits of both signs with NaN and infinities. Every row compared whole.
     */
    public Result repetitionPenalty(int vocab) {
        float[] pens = {1f, 1.3f, 0.7f, 2f, 1.05f, 1.3f};
        int[] lens = {50, 0, 1, 300, 4000, 4000};
        int rows = pens.length;
        int[][] hist = new int[rows][];
        float[] logits = new float[rows * vocab];
        for (int r = 0; r < rows; r++) {
            hist[r] = new int[lens[r] + 3];  // room past the length: never read
            for (int i = 0; i < hist[r].length; i++) {
                int pick = rnd.nextInt(20);
                hist[r][i] = pick == 0 ? -1 - rnd.nextInt(5) : pick == 1 ? vocab + rnd.nextInt(5)
                        : pick < 8 ? rnd.nextInt(Math.min(vocab, 64)) : rnd.nextInt(vocab);  // many repeats
            }
            for (int j = 0; j < vocab; j++) {
                logits[r * vocab + j] = j % 211 == 7 ? Float.NaN : j % 223 == 9 ? Float.NEGATIVE_INFINITY
                        : j % 227 == 11 ? Float.POSITIVE_INFINITY : (float) (3 * rnd.nextGaussian());
            }
        }
        io.distserve.engine.sampling.RepetitionPenalties p = new io.distserve.engine.sampling.RepetitionPenalties(
                pens, hist, lens);
        int[] words = CudaKernels.penaltyWords(p);
        try (DeviceBuffer dl = floatBuffer("logits", logits); DeviceBuffer dw = intBuffer("penalty_args", words)) {
            k.repetitionPenalty(dl, dw.at(4L * (2 * rows + 1)), dw.at(0), dw.at(4L * (rows + 1)), rows, vocab);
            float[] got = new float[rows * vocab];
            dl.download(0, Pointer.to(got), 4L * got.length);
            int wrong = 0;
            String first = null;
            for (int r = 0; r < rows; r++) {
                float[] ref = java.util.Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab);
                p.applyTo(r, ref);
                for (int j = 0; j < vocab; j++) {
                    if (Float.floatToIntBits(ref[j]) != Float.floatToIntBits(got[r * vocab + j])) {
                        wrong++;
                        if (first == null) {
                            first = "row " + r + " (penalty " + pens[r] + ") id " + j + ": got " + got[r * vocab + j]
                                    + ", expected " + ref[j];
                        }
                    }
                }
            }
            float ms = ctx.timeMillis(() -> k.repetitionPenalty(dl, dw.at(4L * (2 * rows + 1)), dw.at(0),
                    dw.at(4L * (rows + 1)), rows, vocab));
            Result res = new Result("repetition_penalty == host", rows + "x" + vocab + " (histories "
                    + java.util.Arrays.toString(lens) + ")", wrong == 0 ? 0 : 1, wrong, 0, ms,
                    wrong == 0 ? null : "FAIL: " + wrong + " logits differ; first " + first);
            results.add(res);
            sink.accept(res);
            return res;
        }
    }

    // ---- whole backend ------------------------------------------------------------------------------------------

    /**
     * CudaBackend vs CpuBackend on the same random bf16 weights: (1) two prompts (23 and 9 tokens) prefilled together
     * with logits at every position, block tables shuffled; (2) decode steps of both, mixed in one batch with the
     * prefill of a third prompt (17 tokens); (3) a second chunk (20 tokens) of the third prompt next to a decode;
     * (4) greedy tokens equal wherever the CPU's top-2 gap exceeds the tolerance. With head dim 64 or 128 the slices
     * of 16 tokens or more (23, 17, 20) take the tensor-core attention_prefill and the others paged_attention.
     */
    public void backendVsCpu(String label, ModelConfig config, int blockSize) {
        RandomStore store = new RandomStore(config, rnd.nextLong());
        int numBlocks = 64;
        try (CpuBackend cpu = CpuBackend.create(config, store, blockSize, numBlocks, 2);
             CudaBackend gpu = CudaBackend.create(config, store, blockSize, numBlocks)) {
            List<Integer> free = new ArrayList<>();
            for (int b = 0; b < numBlocks; b++) {
                free.add(b);
            }
            java.util.Collections.shuffle(free, rnd);
            int[][] tables = new int[3][20];
            for (int s = 0; s < 3; s++) {
                for (int j = 0; j < 20; j++) {
                    tables[s][j] = free.get(s * 20 + j);
                }
            }
            int[] p0 = tokens(config, 23);
            int[] p1 = tokens(config, 9);
            List<SequenceSlice> prefill = List.of(
                    new SequenceSlice(0, p0, 0, tables[0], LogitsMode.ALL),
                    new SequenceSlice(1, p1, 0, tables[1], LogitsMode.ALL));
            compare(label + " prefill (ALL logits)", config, cpu, gpu, prefill);
            int[] p2 = tokens(config, 17);
            int pos0 = p0.length;
            int pos1 = p1.length;
            for (int step = 0; step < 4; step++) {
                List<SequenceSlice> mixed = new ArrayList<>();
                mixed.add(new SequenceSlice(0, tokens(config, 1), pos0 + step, tables[0], LogitsMode.LAST));
                mixed.add(new SequenceSlice(1, tokens(config, 1), pos1 + step, tables[1], LogitsMode.LAST));
                if (step == 1) {
                    mixed.add(1, new SequenceSlice(2, p2, 0, tables[2], LogitsMode.LAST));
                }
                compare(label + " decode step " + step + (step == 1 ? " + prefill" : ""), config, cpu, gpu, mixed);
            }
            // chunked prefill: the third prompt continues (20 tokens after its first 17, logits at every position)
            // next to a decode of the first: keys of an earlier chunk in the paged cache, and (head dim 64 or 128)
            // attention_prefill and paged_attention in one step
            List<SequenceSlice> chunked = List.of(
                    new SequenceSlice(0, tokens(config, 1), pos0 + 4, tables[0], LogitsMode.LAST),
                    new SequenceSlice(2, tokens(config, 20), p2.length, tables[2], LogitsMode.ALL));
            compare(label + " chunked prefill + decode", config, cpu, gpu, chunked);
            // batch 1: the decode GEMMs' M 1 bucket (and the kernels fused there) on their own
            compare(label + " decode batch 1", config, cpu, gpu,
                    List.of(new SequenceSlice(0, tokens(config, 1), pos0 + 5, tables[0], LogitsMode.LAST)));
        }
    }

    /**
     * Decode steps replayed from CUDA graphs against the same steps launched kernel by kernel, on one backend
     * (each step runs four times: eager logits, eager ids, graph logits, graph ids; the KV it writes is the same
     * every time). Four sequences whose contexts cross the 32-key attention tiles (the split length changes
     * between replays), batch 4 then 3 then 4 again (two graphs, each replayed after the other ran).
     */
    public void graphVsEager(String label, ModelConfig config, int blockSize) {
        graphVsEager(label, config, blockSize, 4);
    }

    /**
     * The same with {@code seqs} sequences (4: prompts 29, 3, 62, 12; more: random prompt lengths 1..62), the last
     * one sitting out steps 3..5: at 20 sequences the batch is 20 / 19, so the decode GEMMs of the graphs are the
     * split GEMM's cluster launches (M 17..32).
     */
    public void graphVsEager(String label, ModelConfig config, int blockSize, int seqs) {
        graphVsEager(label, config, blockSize, seqs, -1);
    }

    /**
     * The same, with the backend's tensor-core decode threshold set to {@code tensorDecodeMinBlocks} (-1: the
     * default, the SM count), so that a small model's decodes take the attention_prefill path.
     */
    public void graphVsEager(String label, ModelConfig config, int blockSize, int seqs, int tensorDecodeMinBlocks) {
        RandomStore store = new RandomStore(config, rnd.nextLong());
        int[] promptLens = new int[seqs];
        for (int s = 0; s < seqs; s++) {
            promptLens[s] = seqs == 4 ? new int[] {29, 3, 62, 12}[s] : 1 + rnd.nextInt(62);
        }
        int steps = 10;
        int perSeq = (62 + steps + blockSize - 1) / blockSize;
        int numBlocks = seqs * perSeq + 5;
        try (CudaBackend gpu = CudaBackend.create(config, store, blockSize, numBlocks)) {
            if (tensorDecodeMinBlocks >= 0) {
                gpu.tensorDecodeMinBlocks(tensorDecodeMinBlocks);
            }
            List<Integer> free = new ArrayList<>();
            for (int b = 0; b < numBlocks; b++) {
                free.add(b);
            }
            java.util.Collections.shuffle(free, rnd);
            int[][] tables = new int[seqs][perSeq];
            for (int s = 0; s < seqs; s++) {
                for (int j = 0; j < perSeq; j++) {
                    tables[s][j] = free.get(s * perSeq + j);
                }
            }
            List<SequenceSlice> prefill = new ArrayList<>();
            int[] pos = new int[seqs];
            for (int s = 0; s < seqs; s++) {
                prefill.add(new SequenceSlice(s, tokens(config, promptLens[s]), 0, tables[s], LogitsMode.LAST));
                pos[s] = promptLens[s];
            }
            gpu.forward(prefill);
            List<double[]> eagerAll = new ArrayList<>();
            List<double[]> graphAll = new ArrayList<>();
            int idsChecked = 0;
            int idsWrong = 0;
            float graphMs = 0;
            float eagerMs = 0;
            for (int step = 0; step < steps; step++) {
                List<SequenceSlice> batch = new ArrayList<>();
                for (int s = 0; s < seqs; s++) {
                    if (seqs > 1 && s == seqs - 1 && step >= 3 && step < 6) {
                        continue;  // one sequence fewer for a while
                    }
                    batch.add(new SequenceSlice(s, tokens(config, 1), pos[s]++, tables[s], LogitsMode.LAST));
                }
                gpu.useGraphs(false);
                long t0 = System.nanoTime();
                List<float[]> eager = gpu.forward(batch);
                eagerMs += (System.nanoTime() - t0) / 1e6f;
                int[] eagerIds = gpu.forwardGreedy(batch);
                gpu.useGraphs(true);
                t0 = System.nanoTime();
                List<float[]> graph = gpu.forward(batch);
                graphMs += (System.nanoTime() - t0) / 1e6f;
                int[] graphIds = gpu.forwardGreedy(batch);
                for (int r = 0; r < batch.size(); r++) {
                    eagerAll.add(fromFloats(eager.get(r)));
                    graphAll.add(fromFloats(graph.get(r)));
                    idsChecked++;
                    if (eagerIds[r] != graphIds[r]) {
                        idsWrong++;
                    }
                }
            }
            long[] stats = gpu.graphStats();
            int vocab = config.vocabSize();
            double[] a = new double[eagerAll.size() * vocab];
            double[] b = new double[a.length];
            for (int r = 0; r < eagerAll.size(); r++) {
                System.arraycopy(graphAll.get(r), 0, a, r * vocab, vocab);
                System.arraycopy(eagerAll.get(r), 0, b, r * vocab, vocab);
            }
            String problem = stats[1] < 2L * steps ? "FAIL: only " + stats[1] + " graph replays"
                    : idsWrong > 0 ? "FAIL: " + idsWrong + " greedy ids differ" : null;
            record("graph replay vs eager: " + label, steps + " decode steps, batch " + seqs + "/" + (seqs - 1) + ", " + config.modelType() + " h"
                    + config.hiddenSize() + " L" + config.numLayers() + ", block " + blockSize, a, b, 1e-6,
                    graphMs / steps, problem != null ? problem : String.format(java.util.Locale.ROOT,
                            "%d graphs, %d replays, ids %d/%d equal; host ms/step eager %.2f graph %.2f%s", stats[0],
                            stats[1], idsChecked, idsChecked, eagerMs / steps, graphMs / steps,
                            "; decode GEMMs: " + gpu.decodeSummary()));
        }
    }

    private int[] tokens(ModelConfig c, int n) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(c.vocabSize());
        }
        return t;
    }

    private void compare(String label, ModelConfig c, CpuBackend cpu, CudaBackend gpu, List<SequenceSlice> batch) {
        List<float[]> ref = cpu.forward(batch);
        long t0 = System.nanoTime();
        List<float[]> got = gpu.forward(batch);
        float ms = (System.nanoTime() - t0) / 1e6f;
        int vocab = c.vocabSize();
        double[] a = new double[ref.size() * vocab];
        double[] b = new double[ref.size() * vocab];
        int greedyChecked = 0;
        int greedyWrong = 0;
        for (int r = 0; r < ref.size(); r++) {
            float[] x = ref.get(r);
            float[] y = got.get(r);
            int best = 0;
            int second = -1;
            int bestGpu = 0;
            for (int j = 0; j < vocab; j++) {
                a[r * vocab + j] = y[j];
                b[r * vocab + j] = x[j];
                if (x[j] > x[best]) {
                    second = best;
                    best = j;
                } else if (j != best && (second < 0 || x[j] > x[second])) {
                    second = j;
                }
                if (y[j] > y[bestGpu]) {
                    bestGpu = j;
                }
            }
            double range = 0;
            for (float v : x) {
                range = Math.max(range, Math.abs(v));
            }
            if (second >= 0 && x[best] - x[second] > TOL_MODEL * range) {
                greedyChecked++;
                if (bestGpu != best) {
                    greedyWrong++;
                }
            }
        }
        // the greedy path (ids picked on the device) must give exactly the argmax of the same backend's logits
        // (this repeats the step: the KV it writes is the same)
        int[] ids = gpu.forwardGreedy(batch);
        int idsWrong = 0;
        for (int r = 0; r < got.size(); r++) {
            if (ids[r] != io.distserve.engine.sampling.Sampler.greedyToken(got.get(r))) {
                idsWrong++;
            }
        }
        Result greedy = new Result("forwardGreedy == argmax(forward): " + label, ids.length + " rows",
                idsWrong == 0 ? 0 : 1, idsWrong, 0, 0, idsWrong == 0 ? null : "FAIL: " + idsWrong + " ids differ");
        results.add(greedy);
        sink.accept(greedy);
        record("backend vs cpu: " + label, c.modelType() + " h" + c.hiddenSize() + " L" + c.numLayers() + ", "
                + ref.size() + " logit rows", a, b, TOL_MODEL, ms,
                (greedyWrong == 0 ? "" : "FAIL: ") + "greedy " + (greedyChecked - greedyWrong) + "/" + greedyChecked
                        + " rows agree");
    }

    /**
     * The decode-GEMM tuner ({@link CudaKernels#tuneDecodeAll}) on qwen3-8b's five weight shapes, every bucket (tuned
     * at M 1, 8, 16, 32), on scratch weights (several copies cycled: cold in L2): rows "gemm1 tuner (qwen3-8b)",
     * "gemm8 ...", "gemm16 ...", "gemm32 ..." per shape, ms = the pick's time per launch, note = the pick and every
     * candidate's microseconds. Afterwards this instance's dispatch runs the picks for these shapes (the
     * "gemm (dispatch)" streaming rows).
     */
    public void decode32Tuner() {
        Object[][] shapes = {{"gate_up", 24576, 4096, false}, {"qkv", 6144, 4096, false},
                {"down", 4096, 12288, true}, {"o_proj", 4096, 4096, true}, {"lm_head", 151_936, 4096, true}};
        List<Integer> buckets = new ArrayList<>();
        for (int b = 0; b < CudaKernels.DECODE_BUCKET_M.length; b++) {
            buckets.add(b);
        }
        for (Object[] sh : shapes) {
            int n = (Integer) sh[1];
            int kDim = (Integer) sh[2];
            boolean f32 = (Boolean) sh[3];
            for (CudaKernels.Gemm32Tuning t : k.tuneDecodeScratch(buckets, (String) sh[0], n, kDim, f32)) {
                record("gemm" + t.tuneM() + " tuner (qwen3-8b)", t.tuneM() + "x" + n + "x" + kDim
                        + (f32 ? " f32" : " bf16") + " " + sh[0], new double[0], new double[0], 0,
                        (float) (t.micros().get(t.choice()) / 1e3), "pick " + t.describe());
            }
        }
    }

    /**
     * Every candidate the tuner may pick for M 1..16 (skinny W 4/8/16, dual, split S 1/2/4/8, pipe S 1/2/4/8) at
     * M 1, 5, 8, 13, 16, N 1013 (odd), K 4104 (129 chunks) or 136 (5 chunks), bf16 or fp32 out, alternating so that
     * every candidate meets every M and both K and both outputs; NaN-poisoned, float64 reference, each run twice
     * (bit-identical).
     */
    public void decodeSmallM() {
        int[] ms = {1, 5, 8, 13, 16};
        int i = 0;
        for (int w : CudaKernels.SKINNY_WARPS) {
            for (int j = 0; j < ms.length; j++, i++) {
                gemmSkinnyWarps(ms[j], 1013, (i & 1) == 0 ? 4104 : 136, (i & 2) == 0, w);
            }
        }
        for (int j = 0; j < ms.length; j++, i++) {
            gemmDual(ms[j], 1013, (i & 1) == 0 ? 4104 : 136, (i & 2) == 0);
        }
        for (int s = 1; s <= CudaKernels.SPLIT_MAX_SLICES; s *= 2) {
            for (int j = 0; j < ms.length; j++, i++) {
                gemmSplit(ms[j], 1013, (i & 1) == 0 ? 4104 : 136, (i & 2) == 0, s);
                gemmPipe(ms[j], 1013, (i & 1) == 0 ? 136 : 4104, (i & 2) != 0, s);
            }
        }
    }

    /** Every check, at sizes that are not multiples of the tiles. */
    public void runAll() {
        gemm(77, 131, 200, true);
        gemm(1, 1000, 64, true);
        gemm(130, 70, 264, false);
        gemm(256, 384, 1024, false);
        // the skinny (decode) GEMM: every M variant (<= 8, 16, 32) at its edges, N not a multiple of 16, K not a
        // multiple of the 32-wide chunk nor of the 128-wide run, a K too short for one run per warp
        gemmSkinny(1, 1000, 200, true);
        gemmSkinny(3, 77, 1032, false);
        gemmSkinny(8, 130, 264, true);
        gemmSkinny(9, 333, 520, false);
        gemmSkinny(16, 47, 2056, true);
        gemmSkinny(17, 129, 72, false);
        gemmSkinny(32, 250, 1000, true);
        gemm(29, 517, 4104, false);
        // the split GEMM (M 17..32 in the dispatch): M 17 / 29 / 32, N = 1013 (7 full 128-row tiles + 117), K 4104
        // (129 chunks: a 32-wide tail of 8, segments of 16 + 1 ...) and 136 (5 chunks), every slicing S = 1, 2, 4, 8
        // (empty slices included: 136 in 4 or 8 slices), bf16 and fp32 out; each runs twice, bit-identical
        gemmSplit(17, 1013, 4104, false, 0);   // host's choice: S = 8, 17 chunks per slice (2 segments), last 10
        gemmSplit(29, 1013, 136, true, 0);     // host's choice: S = 1
        gemmSplit(32, 1013, 4104, true, 2);    // 65 chunks per slice: 5 segments
        gemmSplit(29, 1013, 4104, false, 4);   // 33 per slice: 3 segments
        gemmSplit(32, 1013, 4104, true, 8);
        gemmSplit(17, 1013, 4104, true, 1);    // one block per tile, 129 chunks: 9 segments
        gemmSplit(32, 1013, 136, false, 4);    // 2 chunks per slice, the last slice empty
        gemmSplit(17, 1013, 136, true, 8);     // 1 chunk per slice, 3 slices empty
        gemmSplit(32, 1013, 136, true, 2);
        gemmSplit(24, 77, 72, false, 1);       // a single partial tile
        gemm(32, 1013, 4104, true);            // the dispatch (M 32, untuned shape -> split)
        // the decode GEMM variants the tuner picks from (M 17..32): gemm_dual32 and gemm_pipe32 at M 17 / 29 / 32,
        // N 1013 (row tiles of 32 and 128 with a tail), K 4104 (129 chunks: pipe segments of 8 and a 1-chunk tail)
        // and 136 (5 chunks), every pipe slicing (empty slices included), bf16 and fp32 out; NaN-poisoned output,
        // each run twice on re-poisoned output, bit-identical
        gemmDual(17, 1013, 4104, false);
        gemmDual(29, 1013, 136, true);
        gemmDual(32, 1013, 4104, true);
        gemmDual(32, 1013, 136, false);
        gemmDual(29, 77, 72, true);            // 3 chunks: 2 warps; the last row tile mostly past N
        gemmPipe(17, 1013, 4104, true, 1);     // 129 chunks in one slice: 17 segments, the last of 1 chunk
        gemmPipe(29, 1013, 4104, false, 2);    // 65 per slice: 9 segments
        gemmPipe(32, 1013, 4104, true, 4);     // 33 per slice, the last slice 30
        gemmPipe(32, 1013, 4104, false, 8);    // 17 per slice, the last 10
        gemmPipe(17, 1013, 136, false, 8);     // 1 chunk per slice, 3 slices empty
        gemmPipe(32, 1013, 136, true, 2);      // 3 chunks per slice: a partial burst
        gemmPipe(29, 1013, 136, false, 1);
        gemmPipe(17, 1013, 4104, true, 0);     // the host's heuristic slicing
        gemmPipe(24, 77, 72, false, 4);        // one partial tile, 1 chunk per slice, the last slice empty
        gemm(17, 250, 1000, false);
        // the 128 x 128 tiled GEMM (prefill): edges in M, N and K, then a prefill-sized product (the note gives
        // its weight rate; its TFLOP/s is 2 M N K / ms)
        gemm(GemmPath.TILED128, 77, 131, 200, true, 1);
        gemm(GemmPath.TILED128, 300, 257, 1032, false, 1);
        gemm(GemmPath.TILED128, 129, 1000, 72, true, 1);
        gemm(300, 8200, 256, false);
        gemmThroughput(2048, 6144, 4096, 10);   // qwen3-8b qkv_proj over a 2,048-token prefill (dispatch)
        // the wgmma GEMM (H100/H200): odd sizes against full references, then the prefill shapes next to gemm128
        wgmmaGemm(true);
        // a decode-sized layer GEMM over a weight larger than the L2 cache: the ms column is its streaming rate
        gemm(GemmPath.SKINNY, 1, 12288, 4096, false, 20);
        gemm(GemmPath.SKINNY, 16, 12288, 4096, false, 20);
        // qwen3-8b decode GEMMs at batch 32 (split, the dispatch's kernel) against the skinny kernel that ran them
        // before, and at 16 tokens both (should the split kernel be faster there too, -Ddistserve.cuda.splitMinM=9)
        // (plus, for the next round, the tiled GEMM that batch 64 gets today: "gemm (dispatch) 64x...")
        // M 32: split, skinny, dual, pipe (heuristic S) and the dispatch, which runs the tuner's pick (the tuner rows
        // first: its times come from cold weights, these from one weight buffer relaunched 21 times)
        decodeSmallM();
        decode32Tuner();
        GemmPath[] at32 = {GemmPath.SPLIT, GemmPath.SKINNY, GemmPath.DUAL, GemmPath.PIPE, GemmPath.AUTO};
        GemmPath[] cmp7 = {GemmPath.SPLIT, GemmPath.SKINNY, GemmPath.DUAL, GemmPath.PIPE, GemmPath.AUTO,
                GemmPath.SPLIT, GemmPath.SKINNY};
        GemmPath[] cmp8 = {GemmPath.SPLIT, GemmPath.SKINNY, GemmPath.DUAL, GemmPath.PIPE, GemmPath.AUTO,
                GemmPath.SPLIT, GemmPath.SKINNY, GemmPath.AUTO};
        int[] m7 = {32, 32, 32, 32, 32, 16, 16};
        int[] m8 = {32, 32, 32, 32, 32, 16, 16, 64};
        gemmStreaming(24576, 4096, false, 20, m8, cmp8);    // gate|up
        gemmStreaming(6144, 4096, false, 20, m8, cmp8);     // qkv
        gemmStreaming(4096, 12288, true, 20, m7, cmp7);     // down
        gemmStreaming(4096, 4096, true, 20, new int[] {32, 32, 32, 32, 32}, at32);           // o_proj
        gemmStreaming(151936, 4096, true, 20, new int[] {32, 32, 32, 32, 32, 17},            // lm_head
                new GemmPath[] {GemmPath.SPLIT, GemmPath.SKINNY, GemmPath.DUAL, GemmPath.PIPE, GemmPath.AUTO,
                        GemmPath.AUTO});
        embeddingAndNorm(300, 136, 29);
        siluMul(13, 344);
        // the decode path's gate|up GEMMs with silu in the epilogue, every M bucket, odd K, a partial dual tile
        gemmSiluFused(344, 1016, new int[] {1, 5, 8, 13, 16, 29, 32},
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 4),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 16),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.DUAL, 0));
        // o_proj / down_proj with the norm in their last block (M 1): odd N and K, then qwen3-8b's shapes
        gemmNormFused(1000, 1016, new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 4),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.DUAL, 0));
        gemmNormFused(4096, 12288, new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 0),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 4),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.DUAL, 0));
        gemmSiluFused(12288, 4096, new int[] {1, 8, 32},
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.SKINNY, 0),
                new CudaKernels.Gemm32Choice(CudaKernels.Gemm32Variant.DUAL, 0));
        qkNormRopeKvWrite(4, 2, 16, 4, true);
        qkNormRopeKvWrite(6, 2, 128, 16, false);
        qkNormRopeKvWrite(8, 1, 256, 64, true);
        attention(4, 2, 16, 4, 0);
        attention(8, 2, 128, 16, 0);
        attention(8, 2, 128, 16, 5);
        attention(6, 3, 64, 7, 3);
        attention(32, 1, 256, 64, 0);
        attention(16, 8, 128, 64, 2);
        attention(8, 2, 128, 16, 0, true);
        attention(32, 8, 128, 64, 0, true);
        // tensor-core prefill attention (attention_prefill.cu) through the backend's plan: one prompt from 0, chunked
        // prefill with prior context (positions 130 and 5), GQA 32/8, 16/16, 8/1, 6/2 (group 3), 8/4 (group 2),
        // head dim 128 and 64, block sizes 64 (engine default), 16, 7, 5, 1; then a step mixing both kernels
        attentionPrefill(32, 8, 128, 64, new int[] {77}, new int[] {0});
        attentionPrefill(32, 8, 128, 16, new int[] {50, 33}, new int[] {130, 5});
        attentionPrefill(16, 16, 64, 64, new int[] {77}, new int[] {0});
        attentionPrefill(16, 16, 64, 7, new int[] {50, 33}, new int[] {130, 5});
        attentionPrefill(8, 1, 128, 5, new int[] {77, 20}, new int[] {0, 130});
        attentionPrefill(8, 1, 64, 1, new int[] {40, 16}, new int[] {0, 64});
        attentionPrefill(6, 2, 64, 32, new int[] {33, 17}, new int[] {0, 200});
        attentionPrefill(8, 4, 128, 16, new int[] {70, 1, 20, 1, 5}, new int[] {0, 300, 64, 7, 9});
        // qwen3-8b's attention over a 2,048-token prompt: the old path, then the new kernel (ms, TFLOP/s, 36 layers)
        attentionPrefillTiming(2048, 32, 8, 128, 64, 36);
        argmax(7, 1001);
        argmax(5, 151_936);
        sampleRows(1001);
        sampleRows(151_936);
        repetitionPenalty(1001);
        repetitionPenalty(151_936);
        backendVsCpu("qwen3", new ModelConfig("qwen3", 64, 160, 3, 4, 2, 16, 300, 256, 1_000_000.0, 1e-6, true, true,
                -1, List.of(299), "bfloat16"), 4);
        backendVsCpu("llama", new ModelConfig("llama", 48, 128, 2, 6, 2, 8, 257, 128, 10_000.0, 1e-5, false, false,
                1, List.of(2), "bfloat16"), 5);
        backendVsCpu("qwen3 hd128", new ModelConfig("qwen3", 256, 512, 2, 8, 2, 128, 1000, 4096, 1_000_000.0, 1e-6,
                false, true, -1, List.of(999), "bfloat16"), 16);
        backendVsCpu("qwen3 hd64 gqa8", new ModelConfig("qwen3", 256, 512, 2, 8, 1, 64, 1000, 4096, 1_000_000.0,
                1e-6, false, true, -1, List.of(999), "bfloat16"), 64);
        graphVsEager("qwen3 hd128", new ModelConfig("qwen3", 256, 512, 2, 8, 2, 128, 1000, 4096, 1_000_000.0, 1e-6,
                false, true, -1, List.of(999), "bfloat16"), 4);
        graphVsEager("llama", new ModelConfig("llama", 48, 128, 2, 6, 2, 8, 257, 128, 10_000.0, 1e-5, false, false,
                1, List.of(2), "bfloat16"), 5);
        // batch 1: the M 1 decode GEMMs and a split-KV attention merged in its last split, in a graph vs eager
        graphVsEager("qwen3 hd128, batch 1", new ModelConfig("qwen3", 256, 512, 2, 8, 2, 128, 1000, 4096,
                1_000_000.0, 1e-6, false, true, -1, List.of(999), "bfloat16"), 4, 1);
        // batch 20 / 19: every decode GEMM is the M 17..32 kernel the backend's tuner picked per shape at load (the
        // note names them) inside the graphs
        graphVsEager("qwen3 hd128, split GEMM", new ModelConfig("qwen3", 256, 512, 2, 8, 2, 128, 1000, 4096,
                1_000_000.0, 1e-6, false, true, -1, List.of(999), "bfloat16"), 4, 20);
        // decodes on the tensor-core attention (the rule qwen3-8b meets from batch 17 on the H100/H200's 132 SMs),
        // forced here at any batch: graph replays and eager steps through attention_prefill with 1-token items
        graphVsEager("qwen3 hd128, tensor-core decode", new ModelConfig("qwen3", 256, 512, 2, 8, 2, 128, 1000, 4096,
                1_000_000.0, 1e-6, false, true, -1, List.of(999), "bfloat16"), 4, 20, 1);
        graphVsEager("qwen3 hd64 gqa8, tensor-core decode", new ModelConfig("qwen3", 256, 512, 2, 8, 1, 64, 1000,
                4096, 1_000_000.0, 1e-6, false, true, -1, List.of(999), "bfloat16"), 16, 4, 1);
    }
}
