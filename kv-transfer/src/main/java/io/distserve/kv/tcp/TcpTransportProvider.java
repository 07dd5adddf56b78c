package io.distserve.kv.tcp;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportProvider;
import java.util.Optional;

/** Provider for {@code tcp}: plain Java sockets, so always available. Found via ServiceLoader. */
public final class TcpTransportProvider implements TransportProvider {

    @Override
    public String name() {
        return TcpTransport.NAME;
    }

    @Override
    public boolean isAvailable() {
        return true;
    }

    @Override
    public Optional<String> unavailableReason() {
        return Optional.empty();
    }

    @Override
    public Optional<String> unsupportedReason(MemoryRegion region) {
        if (region.isHostAccessible() || region instanceof DeviceRegion) {
            return Optional.empty();
        }
        return Optional.of("tcp serves host memory or GPU memory (a DeviceRegion), not " + region);
    }

    @Override
    public KvTransport create(TransportOptions options) {
        return new TcpTransport(options);
    }
}
