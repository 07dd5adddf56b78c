package io.distserve.kv.nvlink;

import io.distserve.kv.cuda.CudaAvailability;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportProvider;
import io.distserve.kv.transfer.TransportUnavailableException;
import java.util.Optional;

/**
 * Provider for {@code nvlink}: available where the CUDA driver and a device are (and this build has the gather
 * kernel); serves GPU memory only. Found via ServiceLoader.
 */
public final class NvlinkTransportProvider implements TransportProvider {

    private volatile Optional<String> reason; // probed once, on first ask

    @Override
    public String name() {
        return NvlinkTransport.NAME;
    }

    @Override
    public boolean isAvailable() {
        return unavailableReason().isEmpty();
    }

    @Override
    public Optional<String> unavailableReason() {
        Optional<String> r = reason;
        if (r == null) {
            r = Optional.ofNullable(CudaAvailability.unavailableReason());
            reason = r;
        }
        return r;
    }

    @Override
    public Optional<String> unsupportedReason(MemoryRegion region) {
        return region instanceof DeviceRegion ? Optional.empty()
                : Optional.of("nvlink moves GPU memory and this engine's KV pool is in host memory (--backend cpu)");
    }

    @Override
    public KvTransport create(TransportOptions options) {
        Optional<String> why = unavailableReason();
        if (why.isPresent()) {
            throw new TransportUnavailableException("transport 'nvlink' is unavailable: " + why.get());
        }
        return new NvlinkTransport(options);
    }
}
