package io.distserve.registry;

/**
 * The latencies of a node's last {@code capacity} completed requests that are younger than {@code maxAge}, and their
 * mean. A fixed window rather than an exponentially weighted mean: the window forgets a slow period completely after
 * {@code capacity} requests, and its mean is the plain average an operator expects to read in /nodes/status.
 *
 * <p>Samples also age out: a node that answered slowly once and so stopped getting traffic would otherwise keep its
 * slow mean forever (nothing new ever enters its window), and min_observed_latency would never route to it again.
 * Once every sample is older than {@code maxAge} the mean is unknown (null) and the node is measured afresh. Thread-safe.
 */
final class LatencyWindow {

    /** The default window: long enough to smooth one outlier, short enough to follow a node that slows down. */
    static final int DEFAULT_CAPACITY = 32;

    private final long[] nanos;
    private final long[] at;
    private final long maxAgeNanos;
    private int next;
    private int size;

    LatencyWindow(int capacity, long maxAgeNanos) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1, got " + capacity);
        }
        if (maxAgeNanos < 1) {
            throw new IllegalArgumentException("maxAge must be positive, got " + maxAgeNanos + " ns");
        }
        this.nanos = new long[capacity];
        this.at = new long[capacity];
        this.maxAgeNanos = maxAgeNanos;
    }

    /** One completed request's latency, ended at {@code nowNanos} (monotonic clock). */
    synchronized void record(long latencyNanos, long nowNanos) {
        nanos[next] = Math.max(0L, latencyNanos);
        at[next] = nowNanos;
        next = (next + 1) % nanos.length;
        size = Math.min(size + 1, nanos.length);
    }

    /** The mean in milliseconds of the samples younger than the max age at {@code nowNanos}; null when none is. */
    synchronized Double meanMillis(long nowNanos) {
        long sum = 0;
        int count = 0;
        for (int i = 0; i < size; i++) {
            if (nowNanos - at[i] <= maxAgeNanos) {
                sum += nanos[i];
                count++;
            }
        }
        return count == 0 ? null : sum / (double) count / 1_000_000.0;
    }

    synchronized int size() {
        return size;
    }
}
