package io.distserve.kv.device;

/**
 * An ordered queue of device work. Every call only enqueues and returns; {@link #record()} marks a point that an
 * event reports. Not thread-safe: one thread drives a stream.
 */
public interface GpuStream extends AutoCloseable {

    /** Device to pinned host memory. */
    void copyToHost(DeviceMemory src, long srcOffset, PinnedBuffer dst, int dstOffset, int bytes);

    /** Pinned host memory to device. */
    void copyToDevice(PinnedBuffer src, int srcOffset, DeviceMemory dst, long dstOffset, int bytes);

    /** One device-to-device copy (the benchmarks' bulk ceiling). */
    void copy(DeviceMemory src, long srcOffset, DeviceMemory dst, long dstOffset, long bytes);

    /**
     * ONE launch that copies every run of {@code runs} from {@code src} to {@code dst}. The runs must lie inside
     * both memories (callers plan them with {@link io.distserve.kv.transfer.ReadPlanner}).
     */
    void gather(DeviceMemory src, DeviceMemory dst, CopyRuns runs);

    /** An event that completes when everything enqueued so far has run. */
    GpuEvent record();

    /** Waits until everything enqueued so far has run. */
    void synchronize();

    /** Waits for the stream, then destroys it. Idempotent. */
    @Override
    void close();
}
