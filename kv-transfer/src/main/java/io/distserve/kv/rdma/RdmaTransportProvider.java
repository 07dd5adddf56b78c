package io.distserve.kv.rdma;

import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportProvider;
import io.distserve.kv.transfer.TransportUnavailableException;
import java.util.Optional;

/**
 * Provider for {@code rdma} (DiSNI verbs): available where libdisni loads and the kernel shows an RDMA device; its
 * reason otherwise says which is missing, in one line. Found via ServiceLoader.
 */
public final class RdmaTransportProvider implements TransportProvider {

    private volatile Optional<String> reason; // probed once, on first ask

    @Override
    public String name() {
        return RdmaTransport.NAME;
    }

    @Override
    public boolean isAvailable() {
        return unavailableReason().isEmpty();
    }

    @Override
    public Optional<String> unavailableReason() {
        Optional<String> r = reason;
        if (r == null) {
            r = RdmaAvailability.host().reason();
            reason = r;
        }
        return r;
    }

    /** GPU pools need GPUDirect registration (nvidia_peermem), which this build does not do yet. */
    @Override
    public Optional<String> unsupportedReason(MemoryRegion region) {
        return region.isHostAccessible() ? Optional.empty()
                : Optional.of("rdma reads GPU memory only through GPUDirect, which this build does not register yet "
                        + "(use nvlink on one host, tcp between hosts)");
    }

    @Override
    public KvTransport create(TransportOptions options) {
        Optional<String> why = unavailableReason();
        if (why.isPresent()) {
            throw new TransportUnavailableException("rdma is unavailable here: " + why.get());
        }
        return new RdmaTransport(new DisniVerbs(), options);
    }
}
