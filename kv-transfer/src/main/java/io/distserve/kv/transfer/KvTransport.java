package io.distserve.kv.transfer;

import java.time.Duration;

/**
 * One engine's end of a KV transfer transport. Lifecycle: {@link #register} the KV pool, {@link #start()} (starts
 * serving it to peers that present the token), publish {@link #localEndpoint()}, {@link #connect} to peers and
 * {@link Connection#read} from them, {@link #close()} (stops serving, closes connections, joins every thread).
 *
 * <p>Every engine both serves and pulls (a Hybrid engine may be either side), so both sides register and start.
 */
public interface KvTransport extends AutoCloseable {

    /** The transport's registry name, e.g. {@code tcp}. */
    String name();

    /**
     * Registers the memory this engine serves to peers and pulls into. Once, before {@link #start()}.
     *
     * @throws IllegalArgumentException if this transport cannot address the region (e.g. device memory for tcp)
     */
    void register(MemoryRegion region);

    /** Starts serving the registered region. */
    void start() throws TransferException;

    /** Where peers reach this engine; valid after {@link #start()}. */
    EndpointInfo localEndpoint();

    /**
     * Connects to a peer's region: dials, authenticates with the peer's token and checks that the advertised region
     * matches. Connections are independent; callers that want one per peer pool them.
     *
     * @throws TransferTimeoutException if the peer did not answer within {@code timeout}
     * @throws TransferException        if it refused (bad token) or is unreachable
     */
    Connection connect(EndpointInfo remote, Duration timeout) throws TransferException;

    /** Stops serving, closes all connections (failing their batches) and joins all threads. Idempotent. */
    @Override
    void close();
}
