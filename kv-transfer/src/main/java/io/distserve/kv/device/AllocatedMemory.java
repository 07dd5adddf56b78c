package io.distserve.kv.device;

/** Device memory this process allocated and frees. */
public interface AllocatedMemory extends DeviceMemory, AutoCloseable {

    /** Idempotent. */
    @Override
    void close();
}
