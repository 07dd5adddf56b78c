package io.distserve.registry;

/**
 * The latencies of a node's last {@code capacity} completed requests, and their mean. A fixed window rather than
 * an exponentially weighted mean: the window forgets a slow period completely after {@code capacity} requests, and
 * its mean is the plain average an operator expects to read in /nodes/status. Thread-safe.
 */
final class LatencyWindow {

    /** The default window: long enough to smooth one outlier, short enough to follow a node that slows down. */
    static final int DEFAULT_CAPACITY = 32;

    private final long[] nanos;
    private int next;
    private int size;
    private long sum;

    LatencyWindow(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1, got " + capacity);
        }
        this.nanos = new long[capacity];
    }

    synchronized void record(long latencyNanos) {
        long clamped = Math.max(0L, latencyNanos);
        if (size == nanos.length) {
            sum -= nanos[next];
        } else {
            size++;
        }
        nanos[next] = clamped;
        sum += clamped;
        next = (next + 1) % nanos.length;
    }

    /** The mean in milliseconds, or null when nothing has completed yet. */
    synchronized Double meanMillis() {
        return size == 0 ? null : sum / (double) size / 1_000_000.0;
    }

    synchronized int size() {
        return size;
    }
}
