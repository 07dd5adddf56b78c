package io.distserve.engine;

/**
 * How to run a model: which backend, the KV cache's block size and size, threads, and the scheduler's limits.
 *
 * @param backend           {@code cpu} or {@code cuda}
 * @param blockSize         tokens per KV block ({@code --cache-block-seq-len})
 * @param cacheFraction     fraction of free memory for the KV cache ({@code --cache-max-entry-count}); for the CPU
 *                          backend "free memory" is the JVM's free direct-memory budget (-XX:MaxDirectMemorySize,
 *                          by default -Xmx)
 * @param maxBlocks         upper bound on KV blocks whatever the fraction gives (0: none)
 * @param threads           compute threads (CPU backend)
 * @param engine            scheduler limits
 * @param prefixCaching     keep full blocks' K/V after use and reuse it for requests with the same prefix
 *                          ({@code --enable-prefix-caching}, on by default)
 */
public record EngineOptions(String backend, int blockSize, double cacheFraction, int maxBlocks, int threads,
                            EngineConfig engine, boolean prefixCaching) {

    public EngineOptions {
        if (!backend.equals("cpu") && !backend.equals("cuda")) {
            throw new IllegalArgumentException("backend must be cpu or cuda, got '" + backend + "'");
        }
        if (blockSize < 1 || blockSize > 4096) {
            throw new IllegalArgumentException("cache block size must be in [1, 4096], got " + blockSize);
        }
        if (!(cacheFraction > 0 && cacheFraction <= 1)) {
            throw new IllegalArgumentException("cache-max-entry-count must be in (0, 1], got " + cacheFraction);
        }
        if (maxBlocks < 0 || threads < 1) {
            throw new IllegalArgumentException("maxBlocks must be >= 0 and threads >= 1");
        }
    }

    /** Options with prefix caching on. */
    public EngineOptions(String backend, int blockSize, double cacheFraction, int maxBlocks, int threads,
                         EngineConfig engine) {
        this(backend, blockSize, cacheFraction, maxBlocks, threads, engine, true);
    }

    public static EngineOptions cpuDefaults() {
        return new EngineOptions("cpu", 64, 0.8, 0, Math.max(1, Runtime.getRuntime().availableProcessors()),
                EngineConfig.defaults());
    }

    public EngineOptions withMaxBlocks(int n) {
        return new EngineOptions(backend, blockSize, cacheFraction, n, threads, engine, prefixCaching);
    }

    public EngineOptions withPrefixCaching(boolean on) {
        return new EngineOptions(backend, blockSize, cacheFraction, maxBlocks, threads, engine, on);
    }
}
