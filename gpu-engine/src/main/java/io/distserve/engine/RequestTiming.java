package io.distserve.engine;

/**
 * Latencies of one request, measured on the engine (from submit).
 *
 * @param timeToFirstTokenNanos submit to first token; -1 when no token was produced
 * @param totalNanos            submit to finish
 * @param interTokenNanos       gaps between consecutive tokens (one fewer than the tokens); a copy, do not modify
 */
public record RequestTiming(long timeToFirstTokenNanos, long totalNanos, long[] interTokenNanos) {

    /** Mean gap between tokens in milliseconds; 0 with fewer than two tokens. */
    public double meanInterTokenMillis() {
        if (interTokenNanos.length == 0) {
            return 0;
        }
        long sum = 0;
        for (long n : interTokenNanos) {
            sum += n;
        }
        return sum / 1e6 / interTokenNanos.length;
    }
}
