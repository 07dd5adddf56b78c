package io.distserve.engine;

/**
 * A snapshot of an engine's load, for /metrics and the routing strategies. Counts are as of the loop's last
 * iteration (block counts are live).
 *
 * @param waiting          requests submitted and not running (including preempted ones)
 * @param running          sequences in the running batch
 * @param tokensGenerated  tokens sampled since start
 * @param requestsFinished requests ended by stop or length
 * @param requestsAborted  requests aborted
 * @param requestsFailed   requests failed
 * @param preemptions      sequences preempted (recompute) since start
 * @param steps            forward steps run
 * @param prefixQueriedTokens prompt tokens looked up in the prefix cache (first admissions; 0 without a cache)
 * @param prefixHitTokens  of those, the tokens whose K/V the cache held
 * @param cachedBlocks     blocks whose K/V is in the prefix cache (referenced or not)
 * @param evictions        cached blocks reused for other contents since start
 */
public record EngineStats(
        int waiting,
        int running,
        int blocksUsed,
        int blocksFree,
        int blocksTotal,
        long tokensGenerated,
        long requestsFinished,
        long requestsAborted,
        long requestsFailed,
        long preemptions,
        long steps,
        long prefixQueriedTokens,
        long prefixHitTokens,
        int cachedBlocks,
        long evictions) {
}
