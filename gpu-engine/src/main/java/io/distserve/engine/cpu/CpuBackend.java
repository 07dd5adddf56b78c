package io.distserve.engine.cpu;

import io.distserve.engine.ComputeBackend;
import io.distserve.engine.SequenceSlice;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.model.TensorStore;
import io.distserve.engine.safetensors.DType;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The CPU reference backend: Qwen3 and Llama-family decoders in plain Java, float32, multi-threaded.
 *
 * <p>It owns the weights (float arrays on the heap), the paged KV cache ({@link CpuKvCache}, direct memory) and a
 * fixed thread pool. A step ({@link #forward}) runs every token of every slice together:
 * <pre>
 *   x = embed(tokens)
 *   for each layer:
 *       x += attention(rmsnorm(x))     // writes this step's K/V into the cache, reads all earlier ones
 *       x += mlp(rmsnorm(x))
 *   logits = lm_head(rmsnorm(x)) for the rows the slices ask for
 * </pre>
 * Every token's result is bitwise the same whether it runs alone or in a batch, and whatever the thread count.
 * {@code forward} is serialized (one step at a time).
 */
public final class CpuBackend implements ComputeBackend {

    private final ModelConfig config;
    private final CpuWeights weights;
    private final CpuKvCache cache;
    private final MatMul mm;
    private final Rope rope;
    private final Attention attention;
    private final Mlp mlp;
    private boolean closed;

    private CpuBackend(ModelConfig config, CpuWeights weights, int blockSize, int numBlocks, int threads,
                       long maxChunkBytes) {
        checkConfig(config);
        if (blockSize < 1) {
            throw new IllegalArgumentException("block size must be >= 1, got " + blockSize);
        }
        if (numBlocks < 0) {
            throw new IllegalArgumentException("block count must be >= 0, got " + numBlocks);
        }
        this.config = config;
        this.weights = weights;
        this.cache = new CpuKvCache(new KvCacheLayout(config.numLayers(), config.numKvHeads(), config.headDim(),
                blockSize, numBlocks, DType.F32), maxChunkBytes);
        this.mm = new MatMul(threads);
        this.rope = new Rope(config.headDim(), config.ropeTheta(), config.maxPositions());
        this.attention = new Attention(config, cache, rope, mm);
        this.mlp = new Mlp(config, mm);
    }

    /** Loads the weights from {@code store} and allocates a pool of {@code numBlocks} blocks. */
    public static CpuBackend create(ModelConfig config, TensorStore store, int blockSize, int numBlocks,
                                    int threads) {
        checkConfig(config);
        return new CpuBackend(config, CpuWeights.load(config, store), blockSize, numBlocks, threads,
                CpuKvCache.MAX_CHUNK_BYTES);
    }

    /** As {@link #create}, with a smaller chunk limit so that tests can exercise several chunks. */
    static CpuBackend create(ModelConfig config, TensorStore store, int blockSize, int numBlocks, int threads,
                             long maxChunkBytes) {
        checkConfig(config);
        return new CpuBackend(config, CpuWeights.load(config, store), blockSize, numBlocks, threads, maxChunkBytes);
    }

    /**
     * Loads the weights, then sizes the pool to {@code fraction} of the free memory for direct buffers, as measured
     * after the weights are loaded (LMDeploy's {@code --cache-max-entry-count}). "Free" is the smaller of
     * (a) the JVM's direct-memory limit ({@code -XX:MaxDirectMemorySize}, by default the maximum heap size) minus the
     * direct memory already in use and (b) the machine's free physical memory. The weights live on the heap and
     * are not counted against (a).
     *
     * @throws IllegalArgumentException when the fraction is not in (0, 1] or not even one block fits
     */
    public static CpuBackend createWithCacheFraction(ModelConfig config, TensorStore store, int blockSize,
                                                     double fraction, int threads) {
        if (!(fraction > 0 && fraction <= 1)) {
            throw new IllegalArgumentException("cache fraction must be in (0, 1], got " + fraction);
        }
        checkConfig(config);
        CpuWeights weights = CpuWeights.load(config, store);
        long budget = (long) (fraction * freeDirectMemoryBytes());
        return new CpuBackend(config, weights, blockSize, blocksFor(config, blockSize, budget), threads,
                CpuKvCache.MAX_CHUNK_BYTES);
    }

    /** As {@link #create}, with as many blocks as fit in {@code kvBytes} bytes. */
    public static CpuBackend createWithKvBytes(ModelConfig config, TensorStore store, int blockSize, long kvBytes,
                                               int threads) {
        checkConfig(config);
        int blocks = blocksFor(config, blockSize, kvBytes);
        return new CpuBackend(config, CpuWeights.load(config, store), blockSize, blocks, threads,
                CpuKvCache.MAX_CHUNK_BYTES);
    }

    /** Blocks of {@code blockSize} tokens (float32 K and V of every layer) that fit in {@code bytes}. */
    public static int blocksFor(ModelConfig config, int blockSize, long bytes) {
        long perBlock = new KvCacheLayout(config.numLayers(), config.numKvHeads(), config.headDim(), blockSize, 0,
                DType.F32).bytesPerBlock();
        long blocks = Math.min(Integer.MAX_VALUE, Math.max(0, bytes) / perBlock);
        if (blocks < 1) {
            throw new IllegalArgumentException("KV budget of " + bytes + " bytes holds no block of " + perBlock
                    + " bytes (block size " + blockSize + ")");
        }
        return (int) blocks;
    }

    /** Free memory for direct buffers: see {@link #createWithCacheFraction}. */
    public static long freeDirectMemoryBytes() {
        long limit = Runtime.getRuntime().maxMemory();
        long used = 0;
        long physicalFree = Long.MAX_VALUE;
        try {
            var hotspot = ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class);
            long configured = Long.parseLong(hotspot.getVMOption("MaxDirectMemorySize").getValue());
            if (configured > 0) {
                limit = configured;
            }
        } catch (RuntimeException | LinkageError e) {
            // not HotSpot, or no jdk.management module: the default limit (the maximum heap size)
        }
        try {
            for (BufferPoolMXBean pool : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
                if ("direct".equals(pool.getName())) {
                    used = pool.getMemoryUsed();
                }
            }
            if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
                physicalFree = os.getFreeMemorySize();
            }
        } catch (RuntimeException | LinkageError e) {
            // no java.management / jdk.management module: the JVM limit alone
        }
        return Math.max(0, Math.min(limit - used, physicalFree));
    }

    private static void checkConfig(ModelConfig c) {
        if (c.hiddenSize() < 1 || c.intermediateSize() < 1 || c.numLayers() < 1 || c.numHeads() < 1
                || c.numKvHeads() < 1 || c.headDim() < 2 || c.vocabSize() < 1 || c.maxPositions() < 1) {
            throw new IllegalArgumentException("invalid model config " + c);
        }
        if (c.numHeads() % c.numKvHeads() != 0) {
            throw new IllegalArgumentException("heads (" + c.numHeads() + ") must be a multiple of KV heads ("
                    + c.numKvHeads() + ")");
        }
        if (c.headDim() % 2 != 0) {
            throw new IllegalArgumentException("head dim must be even for RoPE, got " + c.headDim());
        }
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public KvCacheLayout kvLayout() {
        return cache.layout();
    }

    @Override
    public List<java.nio.ByteBuffer> hostKvChunks() {
        return cache.chunks();
    }

    /** The paged KV storage, for the KV-transfer layer. */
    public CpuKvCache kvCache() {
        return cache;
    }

    public CpuWeights weights() {
        return weights;
    }

    public int threads() {
        return mm.threads();
    }

    @Override
    public synchronized List<float[]> forward(List<SequenceSlice> batch) {
        if (closed) {
            throw new IllegalStateException("CPU backend is closed");
        }
        StepBatch b = StepBatch.of(batch, config, cache.layout());
        if (b.n == 0) {
            return List.of();
        }
        rope.ensure(b.maxEnd);
        int n = b.n;
        int hidden = config.hiddenSize();
        double eps = config.rmsNormEps();

        float[] x = new float[n * hidden];
        float[] xn = new float[n * hidden];
        float[] delta = new float[n * hidden];
        Attention.Scratch attnScratch = new Attention.Scratch(config, b, mm.threads());
        Mlp.Scratch mlpScratch = new Mlp.Scratch(config, n);

        for (int t = 0; t < n; t++) {
            System.arraycopy(weights.embedding(), b.tokenIds[t] * hidden, x, t * hidden, hidden);
        }
        for (int l = 0; l < config.numLayers(); l++) {
            CpuWeights.Layer layer = weights.layers().get(l);
            RmsNorm.rows(x, layer.inputNorm(), xn, n, hidden, eps);
            attention.forward(l, layer, b, xn, attnScratch, delta);
            add(x, delta, n * hidden);
            RmsNorm.rows(x, layer.postAttentionNorm(), xn, n, hidden, eps);
            mlp.forward(layer, xn, n, mlpScratch, delta);
            add(x, delta, n * hidden);
        }
        return logits(b, x);
    }

    /** Final norm and LM head, only for the rows asked for. */
    private List<float[]> logits(StepBatch b, float[] x) {
        int rows = b.logitRows.length;
        if (rows == 0) {
            return List.of();
        }
        int hidden = config.hiddenSize();
        int vocab = config.vocabSize();
        float[] xs = new float[rows * hidden];
        for (int r = 0; r < rows; r++) {
            RmsNorm.apply(x, b.logitRows[r] * hidden, weights.finalNorm(), xs, r * hidden, hidden,
                    config.rmsNormEps());
        }
        float[] all = new float[rows * vocab];
        mm.matmul(weights.lmHead(), vocab, hidden, xs, rows, all);
        List<float[]> out = new ArrayList<>(rows);
        for (int r = 0; r < rows; r++) {
            out.add(Arrays.copyOfRange(all, r * vocab, (r + 1) * vocab));
        }
        return out;
    }

    private static void add(float[] x, float[] delta, int n) {
        for (int i = 0; i < n; i++) {
            x[i] += delta[i];
        }
    }

    /** Stops the workers and drops the KV pool. Idempotent. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            mm.close();
            cache.close();
        }
    }
}
