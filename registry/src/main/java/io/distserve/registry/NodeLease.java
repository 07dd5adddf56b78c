package io.distserve.registry;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One request's claim on a node: it counts as in flight from {@link NodeRegistry#acquire} until the lease ends.
 * The first of {@link #complete()}, {@link #fail(String)} and {@link #close()} ends it; later calls do nothing, so
 * a try-with-resources block around the request can never leak or double-release a count, whatever path it takes.
 *
 * <p>For a streamed answer, end the lease when the stream ends, not when the first byte is sent.
 */
public final class NodeLease implements AutoCloseable {

    private final TrackedNode node;
    private final TimeSource time;
    private final long startNanos;
    private final AtomicBoolean ended = new AtomicBoolean();

    NodeLease(TrackedNode node, TimeSource time) {
        this.node = node;
        this.time = time;
        this.startNanos = time.nanoTime();
        node.started();
    }

    /** The node's normalized base URL. */
    public String url() {
        return node.url();
    }

    /** The node's role when the lease was taken. */
    public NodeRole role() {
        return node.status().role();
    }

    /**
     * The request completed: its wall time since {@code acquire} joins the node's latency window. Returns whether
     * this call ended the lease (false if it had already ended).
     */
    public boolean complete() {
        if (!ended.compareAndSet(false, true)) {
            return false;
        }
        long end = time.nanoTime();
        node.completed(end - startNanos, end);
        return true;
    }

    /**
     * The request failed because of the node (connection refused, 5xx, broken stream): counted as a failure,
     * no latency recorded. Returns whether this call ended the lease.
     */
    public boolean fail(String error) {
        if (!ended.compareAndSet(false, true)) {
            return false;
        }
        node.failed(error == null ? "unknown error" : error, time.nanoTime());
        return true;
    }

    /**
     * Ends the lease if nothing else did. A lease closed without {@link #complete()} or {@link #fail(String)} (the
     * client went away, the proxy gave up for its own reasons) releases the slot and records nothing: a cancelled
     * request says nothing about the node's speed or health.
     */
    @Override
    public void close() {
        if (ended.compareAndSet(false, true)) {
            node.abandoned();
        }
    }

    public boolean isEnded() {
        return ended.get();
    }

    @Override
    public String toString() {
        return "NodeLease[" + node.url() + (ended.get() ? ", ended]" : "]");
    }
}
