package io.distserve.kv.nvlink;

import io.distserve.kv.cuda.CudaAvailability;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ProbedTransportProvider;
import io.distserve.kv.transfer.TransportOptions;
import java.util.Optional;

/**
 * Provider for {@code nvlink}: available where the CUDA driver and a device are (and this build has the gather
 * kernel); serves GPU memory only. Found via ServiceLoader.
 */
public final class NvlinkTransportProvider extends ProbedTransportProvider {

    @Override
    public String name() {
        return NvlinkTransport.NAME;
    }

    @Override
    protected Optional<String> probe() {
        return Optional.ofNullable(CudaAvailability.unavailableReason());
    }

    @Override
    public Optional<String> unsupportedReason(MemoryRegion region) {
        return region instanceof DeviceRegion ? Optional.empty()
                : Optional.of("nvlink moves GPU memory and this engine's KV pool is in host memory (--backend cpu)");
    }

    @Override
    public KvTransport create(TransportOptions options) {
        requireAvailable();
        return new NvlinkTransport(options);
    }
}
