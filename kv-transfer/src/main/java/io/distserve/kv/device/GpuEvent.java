package io.distserve.kv.device;

/** A point in a {@link GpuStream}. */
public interface GpuEvent extends AutoCloseable {

    /** True once the work before the point has run (does not wait). */
    boolean isComplete();

    /**
     * Waits for the point.
     *
     * @throws DeviceException if the work before it failed (a kernel fault)
     */
    void await();

    /** Idempotent. */
    @Override
    void close();
}
