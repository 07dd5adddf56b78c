package io.distserve.engine;

/**
 * Scheduling limits of an engine.
 *
 * @param maxBatchedTokens tokens computed per step at most (decodes count one each; prefill chunks fill the rest);
 *                         below {@code maxRunning}, the youngest decodes wait for a later step
 * @param maxRunning       sequences in the running batch at most
 * @param maxWaiting       submitted requests not yet admitted at most; beyond it submit fails with
 *                         {@link QueueFullException}
 */
public record EngineConfig(int maxBatchedTokens, int maxRunning, int maxWaiting) {

    public EngineConfig {
        if (maxBatchedTokens < 1 || maxRunning < 1 || maxWaiting < 1) {
            throw new IllegalArgumentException("engine limits must be >= 1: maxBatchedTokens=" + maxBatchedTokens
                    + " maxRunning=" + maxRunning + " maxWaiting=" + maxWaiting);
        }
    }

    public static EngineConfig defaults() {
        return new EngineConfig(2048, 256, 1024);
    }
}
