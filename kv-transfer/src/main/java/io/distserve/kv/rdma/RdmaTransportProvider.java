package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceRegion;
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

    /** Host pools, and GPU pools (through GPUDirect where the peer-memory module is loaded, else staged). */
    @Override
    public Optional<String> unsupportedReason(MemoryRegion region) {
        return region.isHostAccessible() || region instanceof DeviceRegion ? Optional.empty()
                : Optional.of("rdma serves host memory or a GPU pool (DeviceRegion), not " + region);
    }

    @Override
    public KvTransport create(TransportOptions options) {
        requireAvailable();
        return new RdmaTransport(new DisniVerbs(), options);
    }
}
