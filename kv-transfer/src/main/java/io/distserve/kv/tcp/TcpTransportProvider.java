package io.distserve.kv.tcp;

import io.distserve.kv.transfer.KvTransport;
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
    public KvTransport create(TransportOptions options) {
        return new TcpTransport(options);
    }
}
