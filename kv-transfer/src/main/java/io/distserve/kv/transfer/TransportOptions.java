package io.distserve.kv.transfer;

import java.time.Duration;
import java.util.Map;

/**
 * Settings shared by transports; each reads the ones that apply to it.
 *
 * @param bindHost              address to listen on
 * @param port                  port to listen on (0: any free port)
 * @param advertisedHost        host written into {@link EndpointInfo} (null: {@code bindHost})
 * @param streamsPerConnection  parallel streams (sockets for tcp) one connection spreads each batch over
 * @param maxTransferBytes      largest single wire transfer; larger coalesced runs are split
 * @param socketBufferBytes     SO_SNDBUF/SO_RCVBUF (0: OS default)
 * @param handshakeTimeout      how long a server waits for a new peer to authenticate
 * @param extra                 transport-specific settings
 */
public record TransportOptions(String bindHost, int port, String advertisedHost, int streamsPerConnection,
                               long maxTransferBytes, int socketBufferBytes, Duration handshakeTimeout,
                               Map<String, String> extra) {

    public TransportOptions {
        if (bindHost == null || bindHost.isBlank()) {
            throw new IllegalArgumentException("bindHost is required");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port out of range: " + port);
        }
        if (streamsPerConnection < 1 || streamsPerConnection > 64) {
            throw new IllegalArgumentException("streamsPerConnection must be 1..64: " + streamsPerConnection);
        }
        if (maxTransferBytes <= 0 || maxTransferBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("maxTransferBytes must be in (0, 2^31): " + maxTransferBytes);
        }
        if (socketBufferBytes < 0) {
            throw new IllegalArgumentException("socketBufferBytes must be >= 0");
        }
        if (handshakeTimeout == null || handshakeTimeout.isNegative() || handshakeTimeout.isZero()) {
            throw new IllegalArgumentException("handshakeTimeout must be positive");
        }
        extra = extra == null ? Map.of() : Map.copyOf(extra);
    }

    /** Loopback, any port, defaults measured in kv-transfer/BENCHMARKS.md. */
    public static TransportOptions defaults() {
        return new TransportOptions("127.0.0.1", 0, null, 2, 8L << 20, 0, Duration.ofSeconds(5), Map.of());
    }

    public String effectiveAdvertisedHost() {
        return advertisedHost == null ? bindHost : advertisedHost;
    }

    public TransportOptions withBind(String host, int port) {
        return new TransportOptions(host, port, advertisedHost, streamsPerConnection, maxTransferBytes,
                socketBufferBytes, handshakeTimeout, extra);
    }

    public TransportOptions withAdvertisedHost(String host) {
        return new TransportOptions(bindHost, port, host, streamsPerConnection, maxTransferBytes, socketBufferBytes,
                handshakeTimeout, extra);
    }

    public TransportOptions withStreams(int streams) {
        return new TransportOptions(bindHost, port, advertisedHost, streams, maxTransferBytes, socketBufferBytes,
                handshakeTimeout, extra);
    }

    public TransportOptions withMaxTransferBytes(long bytes) {
        return new TransportOptions(bindHost, port, advertisedHost, streamsPerConnection, bytes, socketBufferBytes,
                handshakeTimeout, extra);
    }

    public TransportOptions withSocketBufferBytes(int bytes) {
        return new TransportOptions(bindHost, port, advertisedHost, streamsPerConnection, maxTransferBytes, bytes,
                handshakeTimeout, extra);
    }

    public TransportOptions withHandshakeTimeout(Duration timeout) {
        return new TransportOptions(bindHost, port, advertisedHost, streamsPerConnection, maxTransferBytes,
                socketBufferBytes, timeout, extra);
    }
}
