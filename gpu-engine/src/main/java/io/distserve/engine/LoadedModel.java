package io.distserve.engine;

import io.distserve.engine.cpu.CpuBackend;
import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.kv.PrefixHasher;
import io.distserve.engine.model.Checkpoint;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.tokenizer.ModelTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Hugging Face model folder loaded and running: its config, tokenizer, compute backend (weights + KV cache) and
 * engine loop. Closing it stops the engine and frees everything, in reverse order.
 */
public final class LoadedModel implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(LoadedModel.class);

    private final Path folder;
    private final ModelConfig config;
    private final ModelTokenizer tokenizer;
    private final ComputeBackend backend;
    private final LlmEngine engine;

    private LoadedModel(Path folder, ModelConfig config, ModelTokenizer tokenizer, ComputeBackend backend,
                        LlmEngine engine) {
        this.folder = folder;
        this.config = config;
        this.tokenizer = tokenizer;
        this.backend = backend;
        this.engine = engine;
    }

    /** Loads, validates and starts. Errors name the file and tensor at fault. */
    public static LoadedModel load(Path folder, EngineOptions options) {
        if (!Files.isDirectory(folder)) {
            throw new IllegalArgumentException("model folder " + folder + " does not exist or is not a folder");
        }
        long t0 = System.nanoTime();
        ComputeBackend backend;
        ModelConfig config;
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            checkpoint.validate();
            config = checkpoint.config();
            backend = createBackend(checkpoint, options);
        }
        ModelTokenizer tokenizer = null;
        try {
            tokenizer = ModelTokenizer.load(folder);
            BlockManager blocks = new BlockManager(backend.kvLayout().numBlocks(),
                    options.prefixCaching() ? prefixHasher(config, backend) : null);
            LlmEngine engine = new LlmEngine(backend, blocks, tokenizer.tokenizer(), tokenizer.eosTokenIds(),
                    options.engine());
            engine.start();
            LOG.info("loaded {} ({} layers, hidden {}, vocab {}) on {} in {} ms: {} KV blocks of {} tokens{}",
                    folder.getFileName(), config.numLayers(), config.hiddenSize(), config.vocabSize(), backend.name(),
                    (System.nanoTime() - t0) / 1_000_000, backend.kvLayout().numBlocks(),
                    backend.kvLayout().blockSize(), blocks.cachesPrefixes() ? ", prefix caching on" : "");
            return new LoadedModel(folder, config, tokenizer, backend, engine);
        } catch (RuntimeException e) {
            backend.close();
            if (tokenizer != null) {
                tokenizer.close();
            }
            throw e;
        }
    }

    /**
     * Block keys salted with everything the K/V of a block depends on besides its tokens: the model's shape and
     * numbers, the cache's dtype and block size (engines with the same salt can share and compare prefixes).
     */
    static PrefixHasher prefixHasher(ModelConfig config, ComputeBackend backend) {
        KvCacheLayout kv = backend.kvLayout();
        return new PrefixHasher(PrefixHasher.salt(config + "|" + kv.dtype() + "|" + kv.blockSize()), kv.blockSize());
    }

    private static ComputeBackend createBackend(Checkpoint checkpoint, EngineOptions options) {
        if (options.backend().equals("cuda")) {
            return io.distserve.engine.cuda.CudaBackend.forEngine(checkpoint.config(), checkpoint.tensors(), options);
        }
        ModelConfig config = checkpoint.config();
        int blocks = CpuBackend.blocksFor(config, options.blockSize(),
                (long) (CpuBackend.freeDirectMemoryBytes() * options.cacheFraction()));
        // No point holding more blocks than the scheduler can ever fill: every running sequence at full context.
        long useful = (long) options.engine().maxRunning()
                * ((config.maxPositions() + options.blockSize() - 1) / options.blockSize());
        blocks = (int) Math.min(blocks, Math.min(useful, Integer.MAX_VALUE));
        if (options.maxBlocks() > 0) {
            blocks = Math.min(blocks, options.maxBlocks());
        }
        if (blocks < 1) {
            throw new IllegalStateException("no memory left for the KV cache: raise -Xmx / -XX:MaxDirectMemorySize or "
                    + "--cache-max-entry-count");
        }
        return CpuBackend.create(config, checkpoint.tensors(), options.blockSize(), blocks, options.threads());
    }

    public Path folder() {
        return folder;
    }

    /** The name clients use: the folder's name, as LMDeploy does. */
    public String name() {
        return folder.toAbsolutePath().normalize().getFileName().toString();
    }

    public ModelConfig config() {
        return config;
    }

    public ModelTokenizer tokenizer() {
        return tokenizer;
    }

    public ComputeBackend backend() {
        return backend;
    }

    public LlmEngine engine() {
        return engine;
    }

    @Override
    public void close() {
        engine.close();
        backend.close();
        tokenizer.close();
    }
}
