package io.distserve.kv.transfer;

import java.util.Optional;

/**
 * Makes transports of one kind. Providers are found by {@link java.util.ServiceLoader} (see
 * {@link TransportRegistry#discover()}), so nvlink and rdma plug in from their own jars without callers changing.
 * A provider must be cheap to construct and must not fail when its native pieces are missing: it reports that
 * through {@link #isAvailable()} / {@link #unavailableReason()} instead.
 */
public interface TransportProvider {

    /** Registry name, lower case: {@code tcp}, {@code nvlink}, {@code rdma}. */
    String name();

    /** Whether {@link #create} can work on this machine (native library present, device visible...). */
    boolean isAvailable();

    /** Why not, in one line for the operator (e.g. "libdisni not found on java.library.path"); empty if available. */
    Optional<String> unavailableReason();

    /**
     * Why this transport cannot serve {@code region} (e.g. nvlink and a host-memory pool), or empty when it can.
     * Engines offer a transport only for a region it can serve.
     */
    default Optional<String> unsupportedReason(MemoryRegion region) {
        return Optional.empty();
    }

    /**
     * A new, not yet started transport.
     *
     * @throws TransportUnavailableException if {@link #isAvailable()} is false
     */
    KvTransport create(TransportOptions options);
}
