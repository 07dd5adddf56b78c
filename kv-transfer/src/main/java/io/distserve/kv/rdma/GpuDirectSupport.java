package io.distserve.kv.rdma;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Whether a NIC can register GPU memory on this host: GPUDirect RDMA needs NVIDIA's peer-memory kernel module,
 * {@code nvidia_peermem} (driver 470 and later) or the older {@code nv_peer_mem}. Without it {@code ibv_reg_mr} on a
 * CUDA pointer fails, so the transport stages device memory through pinned host buffers instead.
 */
public final class GpuDirectSupport {

    static final String[] MODULES = {"nvidia_peermem", "nv_peer_mem"};

    private final Path sysModule;

    GpuDirectSupport(Path sysModule) {
        this.sysModule = sysModule;
    }

    /** This host's, from /sys/module. */
    public static GpuDirectSupport host() {
        return new GpuDirectSupport(Path.of("/sys/module"));
    }

    /** Why GPUDirect RDMA cannot be used here, in one line; empty when a peer-memory module is loaded. */
    public Optional<String> missing() {
        for (String m : MODULES) {
            if (Files.isDirectory(sysModule.resolve(m))) {
                return Optional.empty();
            }
        }
        return Optional.of("neither nvidia_peermem nor nv_peer_mem is loaded (" + sysModule + "; modprobe "
                + "nvidia_peermem)");
    }
}
