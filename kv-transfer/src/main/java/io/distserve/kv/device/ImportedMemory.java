package io.distserve.kv.device;

/** Another process's allocation mapped into this one ({@link GpuDevice#openIpc}); {@link #close()} unmaps it. */
public interface ImportedMemory extends DeviceMemory, AutoCloseable {

    /** Unmaps. Idempotent; nothing may still be reading it (callers wait for their gathers first). */
    @Override
    void close();
}
