package io.distserve.kv.device;

/**
 * The few CUDA driver operations the device-memory transports need, on one GPU context. Behind an interface so that
 * the staging and gather logic is tested without a GPU (a host-memory double in the tests); the real one is
 * {@link io.distserve.kv.cuda.JCudaGpuDevice} (JCuda's driver API).
 *
 * <p>CUDA binds a context to a thread: every thread that calls into a device, its streams, events or pinned
 * buffers calls {@link #bind()} first. Transports do this at the start of each thread they run.
 */
public interface GpuDevice extends AutoCloseable {

    /** The device's PCI bus id, e.g. {@code 0000:19:00.0}: which GPU of the host this is. */
    String pciBusId();

    /** Makes this device's context current on the calling thread. */
    void bind();

    /** A stream of its own that does not wait for the engine's compute stream (CUDA's non-blocking stream). */
    GpuStream newStream();

    /** Page-locked host memory the device copies to and from without an intermediate copy. */
    PinnedBuffer allocatePinned(int bytes);

    /** Device memory of this context (benchmarks and tests; engines bring their own KV pool). */
    AllocatedMemory allocate(long bytes);

    /**
     * Exports the allocation that holds {@code memory} to other processes of this host (CUDA IPC).
     *
     * @throws DeviceException if the memory cannot be exported (not from cuMemAlloc, driver refused)
     */
    IpcExport exportIpc(DeviceMemory memory);

    /**
     * Maps another process's exported allocation into this context; the result covers the whole allocation. With
     * lazy peer access, so that an allocation on another GPU of the host is reachable too.
     *
     * @throws DeviceException if the driver does not open it (a foreign, stale or forged handle, a handle of this
     *                         very process, a device this process cannot see)
     */
    ImportedMemory openIpc(byte[] handle);

    /**
     * The address of {@code memory} in the device's virtual address space, for a NIC to register it as an RDMA
     * memory region (GPUDirect RDMA, through the nvidia_peermem module). Marks the allocation for synchronous memory
     * operations ({@code CU_POINTER_ATTRIBUTE_SYNC_MEMOPS}), which NVIDIA requires of memory a NIC reads: copies
     * into it then complete before a later READ can see it.
     *
     * @throws DeviceException if the driver cannot tell (memory not of this context)
     */
    long gpuDirectAddress(DeviceMemory memory);

    /** Frees what the device allocated for the transports (the kernels' module). The context stays: it is the engine's. */
    @Override
    void close();
}
