package io.distserve.engine.cuda;

import io.distserve.engine.RopeAngles;

import io.distserve.engine.ComputeBackend;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.SequenceSlice;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.model.TensorStore;
import io.distserve.engine.sampling.RepetitionPenalties;
import io.distserve.engine.sampling.Sampler;
import io.distserve.engine.safetensors.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CUDA backend: the same function as the CPU reference ({@code cpu.CpuBackend}), on one GPU through JCuda's
 * driver API and the kernels of src/main/cuda. Weights are bf16 in device memory ({@link CudaWeights}); the paged
 * KV pool is one device allocation in exactly the {@link KvCacheLayout} block-major layout, dtype BF16, so that a
 * peer can pull blocks by offset. A step runs every token of every slice together:
 * <pre>
 *   x = embed(tokens)                                   fp32 residual stream
 *   for each layer:
 *       xn = rmsnorm(x += delta)                        add_rmsnorm (fused)
 *       delta = o_proj(attention(qkv_proj(xn)))         GEMM, q/k norm + RoPE + KV write, paged attention, GEMM
 *       xn = rmsnorm(x += delta)
 *       delta = down(silu(gate(xn)) * up(xn))           GEMM (gate|up), silu_mul, GEMM
 *   logits = lm_head(rmsnorm(x += delta)[rows asked])   gather fused into the norm, GEMM, fp32 to the host
 * </pre>
 * Decode steps fuse further (CUDA_NOTES section 13): the gate|up GEMM applies silu_mul in its epilogue, and at one
 * token the o_proj and down_proj GEMMs end with the add + RMSNorm that follows them (the grid's last block).
 * {@code forward} is serialized. Scratch buffers grow to the largest batch seen and are reused. Decode steps
 * (every slice one token) replay a CUDA graph per batch size ({@link DecodeGraphs}); the other steps launch
 * kernel by kernel. Greedy steps pick their tokens on the device ({@link #forwardGreedy}). Attention: slices of
 * at least 16 tokens (prefill chunks) run on the tensor-core flash kernel (attention_prefill.cu), decodes and short
 * slices on paged_attention; a step with both launches both, on disjoint output rows ({@link AttentionPlan}).
 */
public final class CudaBackend implements ComputeBackend {

    private static final Logger LOG = LoggerFactory.getLogger(CudaBackend.class);
    /** Largest split-KV factor for decode attention. */
    private static final int MAX_SPLITS = 32;

    private final ModelConfig config;
    private final CudaContext ctx;
    private final CudaKernels k;
    private final CudaWeights w;
    private final KvCacheLayout layout;
    private final DeviceBuffer kv;
    private final Scratch scratch;
    /** Per-row parameters of sample_rows ({@link CudaKernels#sampleParams}); grown on demand. */
    private DeviceBuffer sampleParams;
    /** Offsets, penalties and ids of repetition_penalty ({@link CudaKernels#penaltyWords}); grown on demand. */
    private DeviceBuffer penaltyArgs;
    private final RopeTables rope;
    private final float eps;
    private final float scale;
    private final DecodeGraphs graphs;
    /** Bumped whenever a scratch buffer or the RoPE tables are reallocated: captured graphs hold their pointers. */
    private long generation;
    private boolean closed;
    /**
     * Decode slices run on the tensor-core attention when they give it at least this many blocks
     * ({@link AttentionPlan#tensorCoreDecode}): the SM count; off with {@code -Ddistserve.cuda.tensorDecode=false}.
     */
    private int tensorDecodeMinBlocks;

    private CudaBackend(ModelConfig config, CudaContext ctx, CudaWeights w, int blockSize, int numBlocks,
                        Scratch scratch) {
        this.config = config;
        this.ctx = ctx;
        this.k = new CudaKernels(ctx);
        this.w = w;
        this.scratch = scratch;
        // before the KV pool takes its share of the free memory (the tuner's scratch A and C are freed after it)
        tuneDecodeGemms();
        this.layout = new KvCacheLayout(config.numLayers(), config.numKvHeads(), config.headDim(), blockSize,
                numBlocks, DType.BF16);
        this.kv = ctx.allocate("kv_pool", Math.max(2, layout.totalBytes()));
        this.rope = new RopeTables(ctx, config.headDim(), config.ropeTheta(), config.maxPositions());
        this.eps = (float) config.rmsNormEps();
        this.scale = (float) (1.0 / Math.sqrt(config.headDim()));
        this.graphs = new DecodeGraphs();
        this.tensorDecodeMinBlocks = Boolean.parseBoolean(System.getProperty("distserve.cuda.tensorDecode", "true"))
                ? ctx.smCount() : Integer.MAX_VALUE;
    }

    /** The self-check: move the tensor-core decode threshold (small test models); retires captured graphs. */
    void tensorDecodeMinBlocks(int minBlocks) {
        this.tensorDecodeMinBlocks = minBlocks;
        generation++;
    }

    /**
     * Picks the decode GEMM kernel of every bucket (M 1, 2..8, 9..16, 17..32) for every weight shape of the model
     * ({@link CudaKernels#tuneDecodeAll},
     * each layer's matrix in turn so that the weights come from HBM), here, before any step, hence before any graph
     * capture: the graphs then capture the picks and a tuning run is never captured. Off with
     * {@code -Ddistserve.cuda.gemm32Tune=false} (then the dispatch's untuned default or -Ddistserve.cuda.gemm32).
     */
    private void tuneDecodeGemms() {
        if ("false".equalsIgnoreCase(System.getProperty("distserve.cuda.gemm32Tune"))) {
            return;
        }
        int hidden = config.hiddenSize();
        int inter = config.intermediateSize();
        int qkvDim = config.qDim() + 2 * config.kvDim();
        List<Object> qkv = new ArrayList<>();
        List<Object> o = new ArrayList<>();
        List<Object> gateUp = new ArrayList<>();
        List<Object> down = new ArrayList<>();
        for (CudaWeights.Layer layer : w.layers) {
            qkv.add(layer.qkv());
            o.add(layer.o());
            gateUp.add(layer.gateUp());
            down.add(layer.down());
        }
        long t0 = System.nanoTime();
        // (name, N, K, fp32 out, weights): the GEMMs of runLayers and lmHead; a shape met twice is tuned once
        Object[][] shapes = {
                {"qkv", qkvDim, hidden, false, qkv},
                {"o_proj", hidden, config.qDim(), true, o},
                {"gate_up", 2 * inter, hidden, false, gateUp},
                {"down", hidden, inter, true, down},
                {"lm_head", config.vocabSize(), hidden, true, List.of(w.lmHead)}};
        int[] tunedHere = {0};
        java.util.function.Function<java.util.Map<String, String>, java.util.Map<String, String>> tune = cached -> {
            java.util.Set<String> done = new java.util.HashSet<>();
            for (Object[] sh : shapes) {
                int n = (Integer) sh[1];
                int kk = (Integer) sh[2];
                boolean f32 = (Boolean) sh[3];
                if (!done.add(n + "x" + kk + (f32 ? "f" : "b")) || k.adoptPicks((String) sh[0], n, kk, f32, cached)) {
                    continue;
                }
                try {
                    k.tuneDecodeAll((String) sh[0], n, kk, f32, (List<?>) sh[4]);
                    tunedHere[0]++;
                } catch (RuntimeException e) {
                    LOG.warn("decode GEMM tuning of {} ({}x{}) failed, the shape keeps the default kernel: {}",
                            sh[0], n, kk, e.toString());
                }
            }
            java.util.Map<String, String> all = new java.util.TreeMap<>(cached);
            all.putAll(k.tunedPicks());
            return all;
        };
        DecodeTuningCache cache = DecodeTuningCache.forDevice(ctx.deviceName(), ctx.smCount(), ctx.fatbinCrc());
        if (cache == null) {
            tune.apply(java.util.Map.of());
        } else {
            cache.withPicks(tune);
        }
        LOG.info("decode GEMM per bucket, {} in {} ms: {}", tunedHere[0] == 0 && cache != null
                        ? "from the tuning cache " + cache.file() : "tuned" + (cache == null ? "" : " (kept in "
                        + cache.file() + ")"), (System.nanoTime() - t0) / 1_000_000, k.decodeSummary());
    }

    /** The decode GEMM picks of every bucket, M 1 .. 32 (self-check notes). */
    synchronized String decodeSummary() {
        return k.decodeSummary();
    }

    /** A backend with exactly {@code numBlocks} KV blocks (tests, the self-check). */
    public static CudaBackend create(ModelConfig config, TensorStore store, int blockSize, int numBlocks) {
        checkConfig(config, blockSize);
        CudaContext ctx = CudaDevice.open();
        CudaWeights w = null;
        try {
            w = CudaWeights.upload(ctx, config, store);
            return new CudaBackend(config, ctx, w, blockSize, numBlocks, new Scratch(ctx, config));
        } catch (RuntimeException e) {
            if (w != null) {
                w.close();
            }
            ctx.close();
            throw e;
        }
    }

    /**
     * For the engine ({@code --backend cuda}): weights, then scratch for a full step
     * ({@code maxBatchedTokens} tokens, {@code maxRunning} logit rows), then a KV pool of
     * {@code cacheFraction} of the device memory still free (LMDeploy's {@code --cache-max-entry-count}), capped
     * at what the scheduler can fill and at {@code maxBlocks}.
     *
     * @throws IllegalStateException with one line when CUDA is unavailable or no block fits
     */
    public static CudaBackend forEngine(ModelConfig config, TensorStore store, EngineOptions options) {
        String why = CudaDevice.unavailableReason();
        if (why != null) {
            throw new IllegalStateException("--backend cuda: " + why);
        }
        checkConfig(config, options.blockSize());
        CudaContext ctx = CudaDevice.open();
        CudaWeights w = null;
        Scratch s = null;
        try {
            w = CudaWeights.upload(ctx, config, store);
            s = new Scratch(ctx, config);
            s.ensure(options.engine().maxBatchedTokens(), options.engine().maxRunning(), 1);
            long perBlock = new KvCacheLayout(config.numLayers(), config.numKvHeads(), config.headDim(),
                    options.blockSize(), 0, DType.BF16).bytesPerBlock();
            long free = ctx.memoryInfo()[0];
            long blocks = (long) (free * options.cacheFraction()) / perBlock;
            long useful = (long) options.engine().maxRunning()
                    * ((config.maxPositions() + options.blockSize() - 1) / options.blockSize());
            blocks = Math.min(blocks, useful);
            blocks = Math.min(blocks, Integer.MAX_VALUE / options.blockSize());
            if (options.maxBlocks() > 0) {
                blocks = Math.min(blocks, options.maxBlocks());
            }
            if (blocks < 1) {
                throw new IllegalStateException("--backend cuda: no device memory left for the KV cache ("
                        + free + " bytes free after the weights, a block needs " + perBlock + ")");
            }
            CudaBackend b = new CudaBackend(config, ctx, w, options.blockSize(), (int) blocks, s);
            String pdlOff = ctx.programmaticUnavailableReason();
            LOG.info("CUDA backend on {} (cc {}, {} SMs): weights {} MiB, KV pool {} blocks x {} tokens = {} MiB; "
                            + "decode graphs with programmatic launches: {}", ctx.deviceName(), ctx.computeCapability(),
                    ctx.smCount(), w.bytes() >> 20, blocks, options.blockSize(), b.layout.totalBytes() >> 20,
                    pdlOff == null ? "on" : "off (" + pdlOff + ")");
            return b;
        } catch (RuntimeException e) {
            if (s != null) {
                s.close();
            }
            if (w != null) {
                w.close();
            }
            ctx.close();
            throw e;
        }
    }

    static void checkConfig(ModelConfig c, int blockSize) {
        if (c.hiddenSize() < 1 || c.intermediateSize() < 1 || c.numLayers() < 1 || c.numHeads() < 1
                || c.numKvHeads() < 1 || c.headDim() < 2 || c.vocabSize() < 1 || c.maxPositions() < 1) {
            throw new IllegalArgumentException("invalid model config " + c);
        }
        if (c.numHeads() % c.numKvHeads() != 0) {
            throw new IllegalArgumentException("heads (" + c.numHeads() + ") must be a multiple of KV heads ("
                    + c.numKvHeads() + ")");
        }
        if (c.hiddenSize() % 8 != 0 || c.intermediateSize() % 8 != 0 || c.headDim() % 8 != 0 || c.headDim() > 256) {
            throw new IllegalArgumentException("the CUDA backend needs hidden size, intermediate size and head dim "
                    + "multiples of 8 and head dim <= 256; got " + c.hiddenSize() + ", " + c.intermediateSize() + ", "
                    + c.headDim());
        }
        if (c.hiddenSize() > CudaKernels.RMS_MAX_HIDDEN) {
            throw new IllegalArgumentException("the CUDA backend supports hidden sizes up to "
                    + CudaKernels.RMS_MAX_HIDDEN + " (its RMSNorm holds a row in registers); got " + c.hiddenSize());
        }
        if (blockSize < 1) {
            throw new IllegalArgumentException("block size must be >= 1, got " + blockSize);
        }
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public KvCacheLayout kvLayout() {
        return layout;
    }

    @Override
    public java.util.Optional<DeviceKvPool> deviceKvPool() {
        return java.util.Optional.of(new DeviceKvPool(ctx.context(), kv.ptr(), kv.bytes()));
    }

    /** The KV pool in device memory (for the KV-transfer layer: block b at byte b * bytesPerBlock). */
    public DeviceBuffer kvPool() {
        return kv;
    }

    public CudaContext context() {
        return ctx;
    }

    @Override
    public synchronized List<float[]> forward(List<SequenceSlice> batch) {
        int rows = run(batch, false);
        return rows == 0 ? List.of() : downloadLogits(rows);
    }

    /**
     * The step of {@link #forward}, but the greedy token of each logit row is picked on the device (argmax_rows)
     * and only the ids come back: 4 bytes per row instead of 151,936 x 4. A row where no logit exceeds -inf (all
     * NaN or -inf: a broken step) is downloaded and decided on the host exactly as {@link Sampler#greedyToken} does.
     */
    @Override
    public synchronized int[] forwardGreedy(List<SequenceSlice> batch) {
        int rows = run(batch, true);
        if (rows == 0) {
            return new int[0];
        }
        return downloadIds(rows);
    }

    /**
     * The step's chosen ids; a row the kernels left at -1 (no logit above -inf) is decided on the host as
     * {@link Sampler#greedyToken} does, from its logits.
     */
    private int[] downloadIds(int rows) {
        int[] ids = scratch.ids.downloadInts(rows);
        for (int r = 0; r < rows; r++) {
            if (ids[r] < 0) {
                float[] row = new float[config.vocabSize()];
                scratch.logits.download(4L * r * row.length, Pointer.to(row), 4L * row.length);
                ids[r] = Sampler.greedyToken(row);
            }
        }
        return ids;
    }

    /**
     * The step of {@link #forward}, with each logit row sampled on the device (sample_rows, the semantics of
     * {@link io.distserve.engine.sampling.RowSampling}); only the ids come back. A row where no logit exceeds -inf
     * is decided on the host as {@link Sampler#greedyToken} does (the kernel leaves the row untouched then).
     */
    @Override
    public synchronized int[] forwardSampled(List<SequenceSlice> batch, float[] temperature, int[] topK,
                                             float[] topP, float[] minP, double[] uniform,
                                             RepetitionPenalties penalties) {
        int rows = run(batch, false);
        if (rows == 0) {
            return new int[0];
        }
        if (temperature.length != rows || topK.length != rows || topP.length != rows || minP.length != rows
                || uniform.length != rows || penalties.rows() != rows) {
            throw new IllegalArgumentException("sampling parameters for " + temperature.length + " rows, the step has "
                    + rows);
        }
        int[] words = CudaKernels.sampleParams(temperature, topK, topP, minP, uniform);
        if (sampleParams == null || sampleParams.bytes() < 4L * words.length) {
            if (sampleParams != null) {
                sampleParams.close();
            }
            sampleParams = ctx.allocate("sample_params", 4L * Math.max(words.length, 6 * 64));
        }
        sampleParams.upload(words);
        if (penalties.any()) {
            applyPenalties(penalties, rows);
        }
        k.sample(scratch.logits, sampleParams, scratch.ids, rows, config.vocabSize());
        return downloadIds(rows);
    }

    /**
     * repetition_penalty over the step's logit rows: offsets, penalties and ids in one upload
     * ({@link CudaKernels#penaltyWords}) to a buffer grown on demand.
     */
    private void applyPenalties(RepetitionPenalties penalties, int rows) {
        int[] words = CudaKernels.penaltyWords(penalties);
        if (penaltyArgs == null || penaltyArgs.bytes() < 4L * words.length) {
            if (penaltyArgs != null) {
                penaltyArgs.close();
            }
            penaltyArgs = ctx.allocate("penalty_args", 4L * Math.max(words.length, 4096));
        }
        penaltyArgs.upload(words);
        k.repetitionPenalty(scratch.logits, penaltyArgs.at(4L * (2 * rows + 1)), penaltyArgs.at(0),
                penaltyArgs.at(4L * (rows + 1)), rows, config.vocabSize());
    }

    /**
     * Enqueues one step: logits of the rows asked for in scratch.logits and, when {@code argmax} (always on the
     * graph path), their greedy ids in scratch.ids. Nothing waits for the device here: the caller's download does
     * (a step without logit rows, an intermediate prefill chunk, returns at once and the next step's upload
     * orders after it).
     *
     * @return the number of logit rows
     */
    private int run(List<SequenceSlice> batch, boolean argmax) {
        if (closed) {
            throw new IllegalStateException("CUDA backend is closed");
        }
        CudaStep step = CudaStep.of(batch, config, layout);
        if (step.n == 0) {
            return 0;
        }
        int rows = step.logitRows.length;
        if (graphs.enabled && step.isDecode() && graphs.replay(step)) {
            return rows;
        }
        // prefill slices (>= 16 tokens) on the tensor-core attention, decodes and short slices on paged_attention
        AttentionPlan plan = AttentionPlan.forStep(step.sliceStart, step.sliceLength, step.slicePosition,
                config.numHeads(), config.numKvHeads(), config.headDim(), ctx.smCount(), MAX_SPLITS,
                tensorDecodeMinBlocks);
        ensure(step, rows, plan);
        Meta meta = scratch.upload(step, plan);
        runLayers(step.n, plan, meta);
        if (rows > 0) {
            lmHead(rows, meta);
            if (argmax) {
                k.argmax(scratch.logits, scratch.ids, rows, config.vocabSize());
            }
        }
        return rows;
    }

    /** Scratch and RoPE tables big enough for the step; a reallocation retires the captured graphs. */
    private void ensure(CudaStep step, int rows, AttentionPlan plan) {
        boolean grown = rope.ensure(step.maxEnd);
        grown |= scratch.ensure(step.n, rows, plan.splits());
        if (grown) {
            generation++;
        }
    }

    /** The decoder layers over the step's n tokens: x (fp32 residual) and delta hold the last layer's output. */
    private void runLayers(int n, AttentionPlan plan, Meta meta) {
        int hidden = config.hiddenSize();
        Scratch s = scratch;
        k.embedding(w.embedding, meta.tokens, s.x, n, hidden);
        k.addRmsNorm(s.x, null, w.layers.get(0).inputNorm(), s.xn, null, n, hidden, eps, true);
        for (int l = 0; l < config.numLayers(); l++) {
            CudaWeights.Layer layer = w.layers.get(l);
            // xn = the input norm of x (+ the previous layer's delta, added by the previous layer's down_proj)
            attention(l, layer, n, plan, meta);
            // + x += delta, xn = post-attention norm
            mlp(l, layer, n);
            // + x += delta, xn = the next layer's input norm (the last layer's delta meets the final norm in lmHead)
        }
    }

    /** delta = o_proj(attention(xn)); writes this layer's K/V of the step's tokens into the pool. */
    private void attention(int l, CudaWeights.Layer layer, int n, AttentionPlan plan, Meta meta) {
        int hidden = config.hiddenSize();
        int qkvDim = config.qDim() + 2 * config.kvDim();
        Scratch s = scratch;
        k.gemm(s.xn, layer.qkv(), s.qkv, n, qkvDim, hidden, false);
        k.qkNormRopeKvWrite(s.qkv, s.q, kv, meta.positions, meta.slots, layer.qNorm(), layer.kNorm(), rope.cos(),
                rope.sin(), n, config.numHeads(), config.numKvHeads(), config.headDim(), l, config.numLayers(),
                layout.blockSize(), eps);
        k.attention(s.q, kv, meta.items, meta.tables, meta.geom, s.attn, s.partO, s.partML, s.splitDone, plan, n,
                config.numHeads(), config.numKvHeads(), config.headDim(), l, config.numLayers(), layout.blockSize(),
                scale);
        k.gemmAddRmsNorm(s.attn, layer.o(), s.delta, n, hidden, config.qDim(), s.x, layer.postNorm(), s.xn, eps,
                s.normDone);
    }

    /**
     * delta = down(silu(gate(xn)) * up(xn)), decode steps getting the activation from the gate|up GEMM itself; then,
     * but for the last layer, x += delta and xn = the next layer's input norm.
     */
    private void mlp(int l, CudaWeights.Layer layer, int n) {
        int hidden = config.hiddenSize();
        int inter = config.intermediateSize();
        Scratch s = scratch;
        k.gemmSiluMul(s.xn, layer.gateUp(), s.gateUp, s.act, n, inter, hidden);
        if (l + 1 < config.numLayers()) {
            k.gemmAddRmsNorm(s.act, layer.down(), s.delta, n, hidden, inter, s.x, w.layers.get(l + 1).inputNorm(),
                    s.xn, eps, s.normDone);
        } else {
            k.gemm(s.act, layer.down(), s.delta, n, hidden, inter, true);
        }
    }

    /** Final norm of the rows asked for (gathered), LM head: fp32 logits in scratch.logits. */
    private void lmHead(int rows, Meta meta) {
        Scratch s = scratch;
        k.addRmsNorm(s.x, s.delta, w.finalNorm, s.xs, meta.logitRows, rows, config.hiddenSize(), eps, false);
        k.gemm(s.xs, w.lmHead, s.logits, rows, config.vocabSize(), config.hiddenSize(), true);
    }

    private List<float[]> downloadLogits(int rows) {
        int vocab = config.vocabSize();
        float[] all = new float[rows * vocab];
        scratch.logits.download(0, Pointer.to(all), 4L * all.length);
        List<float[]> out = new ArrayList<>(rows);
        for (int r = 0; r < rows; r++) {
            out.add(Arrays.copyOfRange(all, r * vocab, (r + 1) * vocab));
        }
        return out;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            try {
                ctx.synchronize();
            } finally {
                graphs.close();
                rope.close();
                scratch.close();
                if (sampleParams != null) {
                    sampleParams.close();
                    sampleParams = null;
                }
                if (penaltyArgs != null) {
                    penaltyArgs.close();
                    penaltyArgs = null;
                }
                kv.close();
                w.close();
                ctx.close();
            }
        }
    }

    /**
     * Device pointers of one step's metadata, all inside one int buffer uploaded with one copy, in this order:
     * tokens [n], positions [n], slots [n], logit rows [rows], attention items [4 items: paged_attention's, then
     * attention_prefill's], geom {splitLen, tableStride}, block tables [slices x tableStride]. Everything before
     * the block tables has a size fixed by (n, rows, items), so a decode graph's pointers stay valid for every step
     * of its batch size; the tables, whose stride grows with the context, come last.
     */
    record Meta(CUdeviceptr tokens, CUdeviceptr positions, CUdeviceptr slots, CUdeviceptr logitRows,
                CUdeviceptr items, CUdeviceptr geom, CUdeviceptr tables) {

        static int ints(int n, int rows, int items, int tableInts) {
            return 4 * n + rows + 4 * items + 2 + tableInts;
        }

        /** Writes the step's metadata into {@code target} (which must hold {@link #ints}). */
        static Meta upload(CudaStep step, AttentionPlan plan, DeviceBuffer target) {
            int n = step.n;
            int rows = step.logitRows.length;
            int[] all = new int[ints(n, rows, plan.allItems(), step.blockTables.length)];
            int o = 0;
            System.arraycopy(step.tokenIds, 0, all, o, n);
            int oPos = o += n;
            System.arraycopy(step.positions, 0, all, o, n);
            int oSlots = o += n;
            System.arraycopy(step.slots, 0, all, o, n);
            int oRows = o += n;
            System.arraycopy(step.logitRows, 0, all, o, rows);
            int oItems = o += rows;
            System.arraycopy(plan.itemTable(), 0, all, o, plan.itemTable().length);
            int oGeom = o += plan.itemTable().length;
            all[o] = plan.splitLen();
            all[o + 1] = step.tableStride;
            int oTables = o += 2;
            System.arraycopy(step.blockTables, 0, all, o, step.blockTables.length);
            target.upload(0, Pointer.to(all), 4L * all.length);
            return new Meta(target.at(0), target.at(4L * oPos), target.at(4L * oSlots), target.at(4L * oRows),
                    target.at(4L * oItems), target.at(4L * oGeom), target.at(4L * oTables));
        }
    }

    /**
     * CUDA graphs of decode steps, one per batch size n: a step whose slices are all single tokens with logits
     * replays the graph of its n instead of ~10 launches per layer from Java (each a few microseconds of JNI and
     * driver time, longer than most of these kernels run at small batch). What changes from step to step is data
     * in device memory: the graph's own metadata buffer (tokens, positions, KV slots, attention items, the split
     * length and the block tables, uploaded before each replay at the same addresses), so a graph stays valid
     * until a scratch buffer or the RoPE tables are reallocated ({@link #generation}). The attention grid's number
     * of KV splits is fixed at capture ({@link AttentionPlan#of} with fixedSplits) and each replay's split length
     * covers its context with that many splits or fewer: the same split boundaries as the eager plan, so the
     * same numbers (self-check: graph replay vs eager step).
     *
     * <p>Off with {@code -Ddistserve.cuda.graphs=false}, and under {@code -Ddistserve.cuda.sync=true} (a
     * synchronize inside a capture is illegal). A batch size whose capture fails runs eagerly from then on.
     */
    final class DecodeGraphs implements AutoCloseable {
        /** Graphs kept at most (one per batch size seen); past that, new sizes run eagerly. */
        static final int MAX_GRAPHS = 128;

        boolean enabled = !Boolean.getBoolean("distserve.cuda.sync")
                && Boolean.parseBoolean(System.getProperty("distserve.cuda.graphs", "true"));
        /**
         * Kernels after the first are captured as programmatic launches (each may start while the one before
         * drains; CUDA_NOTES section 11); off when unavailable ({@link CudaContext#programmaticUnavailableReason})
         * or after a capture with them failed.
         */
        boolean programmatic = ctx.programmaticUnavailableReason() == null;
        private final java.util.Map<Integer, Graph> byN = new java.util.HashMap<>();
        private final java.util.Set<Integer> failed = new java.util.HashSet<>();
        long captures;
        long replays;

        /** One captured decode step: embedding, every layer, final norm, LM head, argmax. */
        private record Graph(CUgraphExec exec, DeviceBuffer meta, long generation) {
            void close() {
                JCudaDriver.cuGraphExecDestroy(exec);
                meta.close();
            }
        }

        /** Runs the decode step through its graph (capturing it first if needed); false: run it eagerly. */
        boolean replay(CudaStep step) {
            int n = step.n;
            AttentionPlan plan = AttentionPlan.forDecodeGraph(step.sliceStart, step.sliceLength,
                    step.slicePosition, config.numHeads(), config.numKvHeads(), config.headDim(), ctx.smCount(),
                    MAX_SPLITS, tensorDecodeMinBlocks);
            ensure(step, n, plan);
            Graph g = byN.get(n);
            if (g != null && g.generation != generation) {
                byN.remove(n);
                g.close();
                g = null;
            }
            if (g == null) {
                if (failed.contains(n) || byN.size() >= MAX_GRAPHS) {
                    return false;
                }
                try {
                    g = captureProgrammaticFirst(step, plan);
                } catch (RuntimeException e) {
                    failed.add(n);
                    LOG.warn("CUDA graph capture of the decode step at batch {} failed; that batch size runs "
                            + "eagerly: {}", n, e.toString());
                    return false;
                }
                byN.put(n, g);
            }
            Meta.upload(step, plan, g.meta);
            ctx.makeCurrent();
            Cuda.check(JCudaDriver.cuGraphLaunch(g.exec, ctx.stream()), "cuGraphLaunch(decode, batch " + n + ")");
            ctx.lastKernel("decode graph (batch " + n + ")");
            replays++;
            return true;
        }

        /**
         * Captures with programmatic launches ({@link ProgrammaticLaunch}) while they work; a capture that fails
         * with them is made again without, and they stay off for this backend (logged once).
         */
        private Graph captureProgrammaticFirst(CudaStep step, AttentionPlan plan) {
            if (programmatic) {
                try {
                    return capture(step, plan, true);
                } catch (RuntimeException e) {
                    programmatic = false;
                    LOG.warn("decode graphs: capture with programmatic launches failed, captured with plain launches "
                            + "from now on: {}", e.toString());
                }
            }
            return capture(step, plan, false);
        }

        private Graph capture(CudaStep step, AttentionPlan plan, boolean withProgrammatic) {
            int n = step.n;
            int maxStride = (config.maxPositions() + layout.blockSize() - 1) / layout.blockSize();
            DeviceBuffer meta = ctx.allocate("decode_meta_" + n, 4L * Meta.ints(n, n, plan.allItems(),
                    n * maxStride));
            try {
                // the upload fixes the addresses the launches below capture (a copy cannot be made inside the
                // capture: it runs on the legacy stream)
                Meta m = Meta.upload(step, plan, meta);
                ctx.makeCurrent();
                Cuda.check(JCudaDriver.cuStreamBeginCapture(ctx.stream(),
                        CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
                CUgraph graph = new CUgraph();
                RuntimeException failure = null;
                try {
                    ctx.programmaticLaunches(withProgrammatic);
                    runLayers(n, plan, m);
                    lmHead(n, m);
                    k.argmax(scratch.logits, scratch.ids, n, config.vocabSize());
                } catch (RuntimeException e) {
                    failure = e;
                } finally {
                    ctx.programmaticLaunches(false);
                }
                int rc = JCudaDriver.cuStreamEndCapture(ctx.stream(), graph);
                if (failure != null) {
                    if (rc == 0) {
                        JCudaDriver.cuGraphDestroy(graph);
                    }
                    throw failure;
                }
                Cuda.check(rc, "cuStreamEndCapture");
                CUgraphExec exec = new CUgraphExec();
                try {
                    Cuda.check(JCudaDriver.cuGraphInstantiate(exec, graph, 0), "cuGraphInstantiate");
                } finally {
                    JCudaDriver.cuGraphDestroy(graph);
                }
                captures++;
                return new Graph(exec, meta, generation);
            } catch (RuntimeException e) {
                meta.close();
                throw e;
            }
        }

        @Override
        public void close() {
            for (Graph g : byN.values()) {
                g.close();
            }
            byN.clear();
        }
    }

    /** Turns decode graphs on or off (the self-check compares both); on by default. */
    synchronized void useGraphs(boolean on) {
        graphs.enabled = on && !Boolean.getBoolean("distserve.cuda.sync");
    }

    /** {captured graphs, graph replays} so far. */
    synchronized long[] graphStats() {
        return new long[] {graphs.captures, graphs.replays};
    }

    /**
     * Activations and per-step metadata, grown (by 1.5x) to the largest step seen, never shrunk.
     * {@link #ensure} says whether anything was reallocated (captured graphs hold the old pointers).
     */
    static final class Scratch implements AutoCloseable {
        private final CudaContext ctx;
        private final ModelConfig c;
        private int tokens;
        private int rowsCap;
        /** Capacity of the split-KV workspace in (token, split) pairs. */
        private long partCap;
        private int metaCap;
        DeviceBuffer x, delta, xn, qkv, q, attn, gateUp, act, xs, logits, ids, partO, partML, splitDone, meta;
        /** The block counter of the GEMMs with a norm tail (CudaKernels#gemmAddRmsNorm): zero between launches. */
        DeviceBuffer normDone;

        Scratch(CudaContext ctx, ModelConfig c) {
            this.ctx = ctx;
            this.c = c;
        }

        /** @return true when a buffer was reallocated */
        boolean ensure(int n, int rows, int splits) {
            boolean grown = false;
            if (normDone == null) {
                normDone = ctx.allocate("norm_done", 4);
                normDone.fill32(0);
                grown = true;
            }
            if (n > tokens) {
                int cap = Math.max(n, tokens + tokens / 2);
                freeTokenBuffers();
                long h = c.hiddenSize();
                x = ctx.allocate("x", 4L * cap * h);
                delta = ctx.allocate("delta", 4L * cap * h);
                xn = ctx.allocate("xn", 2L * cap * h);
                qkv = ctx.allocate("qkv", 2L * cap * (c.qDim() + 2L * c.kvDim()));
                q = ctx.allocate("q", 2L * cap * c.qDim());
                attn = ctx.allocate("attn", 2L * cap * c.qDim());
                gateUp = ctx.allocate("gate_up", 2L * cap * 2 * c.intermediateSize());
                act = ctx.allocate("act", 2L * cap * c.intermediateSize());
                tokens = cap;
                grown = true;
            }
            if (rows > rowsCap) {
                int cap = Math.max(rows, rowsCap + rowsCap / 2);
                xs = close(xs);
                logits = close(logits);
                ids = close(ids);
                xs = ctx.allocate("xs", 2L * cap * c.hiddenSize());
                logits = ctx.allocate("logits", 4L * cap * c.vocabSize());
                ids = ctx.allocate("greedy_ids", 4L * cap);
                rowsCap = cap;
                grown = true;
            }
            // split-KV workspace [splits][n * heads][hd] (+ max, sum): only steps with few tokens split
            if (splits > 1 && (long) splits * n > partCap) {
                long cap = Math.max((long) splits * n, partCap + partCap / 2);
                partO = close(partO);
                partML = close(partML);
                partO = ctx.allocate("attn_part_o", 4L * cap * c.numHeads() * c.headDim());
                partML = ctx.allocate("attn_part_ml", 8L * cap * c.numHeads());
                partCap = cap;
                grown = true;
            }
            // paged_attention's split counters: zero once here, every launch leaves them zero
            if (splits > 1 && (splitDone == null || splitDone.bytes() < 4 * CudaKernels.splitDoneInts(n,
                    c.numHeads()))) {
                splitDone = close(splitDone);
                splitDone = ctx.allocate("attn_split_done", 4 * CudaKernels.splitDoneInts(Math.max(n, tokens),
                        c.numHeads()));
                splitDone.fill32(0);
                grown = true;
            }
            return grown;
        }

        /** The step's metadata into the shared (eager) metadata buffer. */
        Meta upload(CudaStep step, AttentionPlan plan) {
            int ints = Meta.ints(step.n, step.logitRows.length, plan.allItems(), step.blockTables.length);
            if (ints > metaCap) {
                meta = close(meta);
                metaCap = Math.max(ints, metaCap + metaCap / 2);
                meta = ctx.allocate("step_meta", 4L * metaCap);
            }
            return Meta.upload(step, plan, meta);
        }

        private void freeTokenBuffers() {
            x = close(x);
            delta = close(delta);
            xn = close(xn);
            qkv = close(qkv);
            q = close(q);
            attn = close(attn);
            gateUp = close(gateUp);
            act = close(act);
        }

        /** Closes {@code b} if any; returns null (for the field). */
        private static DeviceBuffer close(DeviceBuffer b) {
            if (b != null) {
                b.close();
            }
            return null;
        }

        @Override
        public void close() {
            freeTokenBuffers();
            partO = close(partO);
            partML = close(partML);
            splitDone = close(splitDone);
            normDone = close(normDone);
            xs = close(xs);
            logits = close(logits);
            ids = close(ids);
            meta = close(meta);
        }
    }

    /** RoPE cos/sin tables [positions][headDim/2] in fp32, computed in double as the CPU backend's Rope does. */
    static final class RopeTables implements AutoCloseable {
        private final CudaContext ctx;
        private final RopeAngles angles;
        private int positions;
        private DeviceBuffer cos;
        private DeviceBuffer sin;

        RopeTables(CudaContext ctx, int headDim, double theta, int maxPositions) {
            this.ctx = ctx;
            this.angles = new RopeAngles(headDim, theta, maxPositions);
        }

        /** @return true when the tables were reallocated */
        boolean ensure(int needed) {
            RopeAngles.Tables t = angles.grow(positions, needed);
            if (t == null) {
                return false;
            }
            close();
            cos = ctx.allocate("rope_cos", 4L * t.cos().length);
            sin = ctx.allocate("rope_sin", 4L * t.sin().length);
            cos.upload(t.cos());
            sin.upload(t.sin());
            positions = t.positions();
            return true;
        }

        DeviceBuffer cos() {
            return cos;
        }

        DeviceBuffer sin() {
            return sin;
        }

        @Override
        public void close() {
            if (cos != null) {
                cos.close();
                sin.close();
                cos = null;
                sin = null;
            }
        }
    }
}
