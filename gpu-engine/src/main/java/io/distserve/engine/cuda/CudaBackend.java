package io.distserve.engine.cuda;

import io.distserve.engine.ComputeBackend;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.SequenceSlice;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.model.TensorStore;
import io.distserve.engine.sampling.Sampler;
import io.distserve.engine.safetensors.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jcuda.Pointer;
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
 * {@code forward} is serialized. Scratch buffers grow to the largest batch seen and are reused.
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
    private final RopeTables rope;
    private final float eps;
    private final float scale;
    private boolean closed;

    private CudaBackend(ModelConfig config, CudaContext ctx, CudaWeights w, int blockSize, int numBlocks,
                        Scratch scratch) {
        this.config = config;
        this.ctx = ctx;
        this.k = new CudaKernels(ctx);
        this.w = w;
        this.scratch = scratch;
        this.layout = new KvCacheLayout(config.numLayers(), config.numKvHeads(), config.headDim(), blockSize,
                numBlocks, DType.BF16);
        this.kv = ctx.allocate("kv_pool", Math.max(2, layout.totalBytes()));
        this.rope = new RopeTables(ctx, config.headDim(), config.ropeTheta(), config.maxPositions());
        this.eps = (float) config.rmsNormEps();
        this.scale = (float) (1.0 / Math.sqrt(config.headDim()));
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
            LOG.info("CUDA backend on {} (cc {}, {} SMs): weights {} MiB, KV pool {} blocks x {} tokens = {} MiB",
                    ctx.deviceName(), ctx.computeCapability(), ctx.smCount(), w.bytes() >> 20, blocks,
                    options.blockSize(), b.layout.totalBytes() >> 20);
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

    /** The KV pool in device memory (for the KV-transfer layer: block b at byte b * bytesPerBlock). */
    public DeviceBuffer kvPool() {
        return kv;
    }

    public CudaContext context() {
        return ctx;
    }

    @Override
    public synchronized List<float[]> forward(List<SequenceSlice> batch) {
        Prepared p = prepare(batch);
        if (p == null) {
            return List.of();
        }
        runLayers(p.step, p.plan, p.meta);
        int rows = p.step.logitRows.length;
        if (rows == 0) {
            ctx.synchronize();
            return List.of();
        }
        lmHead(rows, p.meta);
        return downloadLogits(rows);
    }

    /**
     * The step of {@link #forward}, but the greedy token of each logit row is picked on the device (argmax_rows)
     * and only the ids come back: 4 bytes per row instead of 151,936 x 4. A row where no logit exceeds -inf (all
     * NaN or -inf: a broken step) is downloaded and decided on the host exactly as {@link Sampler#greedyToken} does.
     */
    @Override
    public synchronized int[] forwardGreedy(List<SequenceSlice> batch) {
        Prepared p = prepare(batch);
        if (p == null) {
            return new int[0];
        }
        runLayers(p.step, p.plan, p.meta);
        int rows = p.step.logitRows.length;
        if (rows == 0) {
            ctx.synchronize();
            return new int[0];
        }
        lmHead(rows, p.meta);
        k.argmax(scratch.logits, scratch.ids, rows, config.vocabSize());
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

    /** A validated step with its attention plan and metadata on the device; null when it has no tokens. */
    private record Prepared(CudaStep step, AttentionPlan plan, Meta meta) {
    }

    private Prepared prepare(List<SequenceSlice> batch) {
        if (closed) {
            throw new IllegalStateException("CUDA backend is closed");
        }
        CudaStep step = CudaStep.of(batch, config, layout);
        if (step.n == 0) {
            return null;
        }
        int rows = step.logitRows.length;
        AttentionPlan plan = AttentionPlan.of(step.sliceStart, step.sliceLength, step.slicePosition,
                config.numHeads(), config.numKvHeads(), ctx.smCount(), MAX_SPLITS);
        rope.ensure(step.maxEnd);
        scratch.ensure(step.n, rows, plan.splits());
        return new Prepared(step, plan, scratch.upload(step, plan));
    }

    private void runLayers(CudaStep step, AttentionPlan plan, Meta meta) {
        int n = step.n;
        int hidden = config.hiddenSize();
        Scratch s = scratch;
        k.embedding(w.embedding, meta.tokens, s.x, n, hidden);
        for (int l = 0; l < config.numLayers(); l++) {
            CudaWeights.Layer layer = w.layers.get(l);
            k.addRmsNorm(s.x, l == 0 ? null : s.delta, layer.inputNorm(), s.xn, null, n, hidden, eps, true);
            attention(l, layer, step, plan, meta);
            k.addRmsNorm(s.x, s.delta, layer.postNorm(), s.xn, null, n, hidden, eps, true);
            mlp(layer, n);
        }
    }

    /** delta = o_proj(attention(xn)); writes this layer's K/V of the step's tokens into the pool. */
    private void attention(int l, CudaWeights.Layer layer, CudaStep step, AttentionPlan plan, Meta meta) {
        int n = step.n;
        int hidden = config.hiddenSize();
        int qkvDim = config.qDim() + 2 * config.kvDim();
        Scratch s = scratch;
        k.gemm(s.xn, layer.qkv(), s.qkv, n, qkvDim, hidden, false);
        k.qkNormRopeKvWrite(s.qkv, s.q, kv, meta.positions, meta.slots, layer.qNorm(), layer.kNorm(), rope.cos(),
                rope.sin(), n, config.numHeads(), config.numKvHeads(), config.headDim(), l, config.numLayers(),
                layout.blockSize(), eps);
        k.attention(s.q, kv, meta.items, meta.tables, step.tableStride, s.attn, s.partO, s.partML, plan, n,
                config.numHeads(), config.numKvHeads(), config.headDim(), l, config.numLayers(), layout.blockSize(),
                scale);
        k.gemm(s.attn, layer.o(), s.delta, n, hidden, config.qDim(), true);
    }

    /** delta = down(silu(gate(xn)) * up(xn)). */
    private void mlp(CudaWeights.Layer layer, int n) {
        int hidden = config.hiddenSize();
        int inter = config.intermediateSize();
        Scratch s = scratch;
        k.gemm(s.xn, layer.gateUp(), s.gateUp, n, 2 * inter, hidden, false);
        k.siluMul(s.gateUp, s.act, n, inter);
        k.gemm(s.act, layer.down(), s.delta, n, hidden, inter, true);
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
                rope.close();
                scratch.close();
                kv.close();
                w.close();
                ctx.close();
            }
        }
    }

    /** Device pointers of one step's metadata (all inside one int buffer, uploaded with one copy). */
    record Meta(jcuda.driver.CUdeviceptr tokens, jcuda.driver.CUdeviceptr positions, jcuda.driver.CUdeviceptr slots,
                jcuda.driver.CUdeviceptr logitRows, jcuda.driver.CUdeviceptr items, jcuda.driver.CUdeviceptr tables) {
    }

    /** Activations and per-step metadata, grown (by 1.5x) to the largest step seen, never shrunk. */
    static final class Scratch implements AutoCloseable {
        private final CudaContext ctx;
        private final ModelConfig c;
        private int tokens;
        private int rowsCap;
        private int splitsCap;
        private int metaCap;
        DeviceBuffer x, delta, xn, qkv, q, attn, gateUp, act, xs, logits, ids, partO, partML, meta;

        Scratch(CudaContext ctx, ModelConfig c) {
            this.ctx = ctx;
            this.c = c;
        }

        void ensure(int n, int rows, int splits) {
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
                splitsCap = 0;
            }
            if (rows > rowsCap) {
                int cap = Math.max(rows, rowsCap + rowsCap / 2);
                close(xs);
                close(logits);
                close(ids);
                xs = ctx.allocate("xs", 2L * cap * c.hiddenSize());
                logits = ctx.allocate("logits", 4L * cap * c.vocabSize());
                ids = ctx.allocate("greedy_ids", 4L * cap);
                rowsCap = cap;
            }
            if (splits > 1 && splits > splitsCap) {
                close(partO);
                close(partML);
                long r = (long) tokens * c.numHeads();
                partO = ctx.allocate("attn_part_o", 4L * splits * r * c.headDim());
                partML = ctx.allocate("attn_part_ml", 8L * splits * r);
                splitsCap = splits;
            }
        }

        Meta upload(CudaStep step, AttentionPlan plan) {
            int n = step.n;
            int[] all = new int[4 * n + step.logitRows.length + plan.itemTable().length + step.blockTables.length];
            int o = 0;
            System.arraycopy(step.tokenIds, 0, all, o, n);
            int oPos = o += n;
            System.arraycopy(step.positions, 0, all, o, n);
            int oSlots = o += n;
            System.arraycopy(step.slots, 0, all, o, n);
            int oRows = o += n;
            System.arraycopy(step.logitRows, 0, all, o, step.logitRows.length);
            int oItems = o += step.logitRows.length;
            System.arraycopy(plan.itemTable(), 0, all, o, plan.itemTable().length);
            int oTables = o += plan.itemTable().length;
            System.arraycopy(step.blockTables, 0, all, o, step.blockTables.length);
            if (all.length > metaCap) {
                close(meta);
                metaCap = Math.max(all.length, metaCap + metaCap / 2);
                meta = ctx.allocate("step_meta", 4L * metaCap);
            }
            meta.upload(0, Pointer.to(all), 4L * all.length);
            return new Meta(meta.at(0), meta.at(4L * oPos), meta.at(4L * oSlots), meta.at(4L * oRows),
                    meta.at(4L * oItems), meta.at(4L * oTables));
        }

        private void freeTokenBuffers() {
            for (DeviceBuffer b : new DeviceBuffer[] {x, delta, xn, qkv, q, attn, gateUp, act, partO, partML}) {
                close(b);
            }
        }

        private static void close(DeviceBuffer b) {
            if (b != null) {
                b.close();
            }
        }

        @Override
        public void close() {
            freeTokenBuffers();
            close(xs);
            close(logits);
            close(ids);
            close(meta);
        }
    }

    /** RoPE cos/sin tables [positions][headDim/2] in fp32, computed in double as the CPU backend's Rope does. */
    static final class RopeTables implements AutoCloseable {
        private final CudaContext ctx;
        private final int half;
        private final int maxPositions;
        private final double[] invFreq;
        private int positions;
        private DeviceBuffer cos;
        private DeviceBuffer sin;

        RopeTables(CudaContext ctx, int headDim, double theta, int maxPositions) {
            this.ctx = ctx;
            this.half = headDim / 2;
            this.maxPositions = maxPositions;
            this.invFreq = new double[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
            }
        }

        void ensure(int needed) {
            if (needed <= positions) {
                return;
            }
            int n = Math.min(maxPositions, Math.max(needed, Math.max(256, positions * 2)));
            float[] c = new float[n * half];
            float[] s = new float[n * half];
            for (int p = 0; p < n; p++) {
                for (int i = 0; i < half; i++) {
                    double angle = p * invFreq[i];
                    c[p * half + i] = (float) Math.cos(angle);
                    s[p * half + i] = (float) Math.sin(angle);
                }
            }
            close();
            cos = ctx.allocate("rope_cos", 4L * c.length);
            sin = ctx.allocate("rope_sin", 4L * s.length);
            cos.upload(c);
            sin.upload(s);
            positions = n;
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
