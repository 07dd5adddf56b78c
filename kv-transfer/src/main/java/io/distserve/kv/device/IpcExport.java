package io.distserve.kv.device;

/**
 * An allocation exported to other processes.
 *
 * @param handle the driver's 64-byte handle (a capability: whoever holds it can read and write the allocation)
 * @param offset where the exported memory starts inside the allocation (the handle always names the whole of it)
 */
public record IpcExport(byte[] handle, long offset) {

    /** Bytes of a CUDA IPC memory handle ({@code CU_IPC_HANDLE_SIZE}). */
    public static final int HANDLE_BYTES = 64;

    public IpcExport {
        if (handle == null || handle.length != HANDLE_BYTES) {
            throw new IllegalArgumentException("an IPC handle has " + HANDLE_BYTES + " bytes");
        }
        if (offset < 0) {
            throw new IllegalArgumentException("offset must be >= 0");
        }
        handle = handle.clone();
    }

    @Override
    public byte[] handle() {
        return handle.clone();
    }
}
