package io.distserve.kv.rdma;

import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ProbedTransportProvider;
import io.distserve.kv.transfer.TransportOptions;
import java.util.Optional;

/**
 * Provider for {@code rdma} (DiSNI verbs): available where libdisni loads and the kernel shows an RDMA device; its
 * reason otherwise says which is missing, in one line. Found via ServiceLoader.
 */
public final class RdmaTransportProvider extends ProbedTransportProvider {

    @Override
    public String name() {
        return RdmaTransport.NAME;
    }

    @Override
    protected Optional<String> probe() {
        return RdmaAvailability.host().reason();
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
        requireAvailable();
        return new RdmaTransport(new DisniVerbs(), options);
    }
}
