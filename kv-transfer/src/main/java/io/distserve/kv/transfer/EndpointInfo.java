package io.distserve.kv.transfer;

import java.util.List;
import java.util.Map;

/**
 * How a peer reaches an engine's registered region. Plain fields so the caller can serialize it as JSON (this module
 * has no JSON library); the transport never needs Java serialization.
 *
 * @param transport    transport name ({@code tcp}, {@code nvlink}, {@code rdma})
 * @param host         address the peer dials
 * @param port         port the peer dials
 * @param regionSize   size of the served region in bytes
 * @param segmentSizes sizes of the region's segments in order (the peer splits reads at their ends)
 * @param token        secret the peer must present when connecting; treat it like a password (don't log it)
 * @param attributes   transport-specific extras (e.g. CUDA IPC handles for nvlink); empty for tcp
 */
public record EndpointInfo(String transport, String host, int port, long regionSize, List<Long> segmentSizes,
                           String token, Map<String, String> attributes) {

    public EndpointInfo {
        if (transport == null || transport.isBlank()) {
            throw new IllegalArgumentException("transport is required");
        }
        segmentSizes = segmentSizes == null ? List.of(regionSize) : List.copyOf(segmentSizes);
        attributes = attributes == null ? Map.of() : Map.copyOf(attributes);
    }

    /** The remote region's layout, checked against {@link #regionSize()}. */
    public RegionLayout layout() {
        RegionLayout layout = new RegionLayout(segmentSizes);
        if (layout.size() != regionSize) {
            throw new IllegalArgumentException("segment sizes add up to " + layout.size() + " but regionSize is "
                    + regionSize);
        }
        return layout;
    }

    /** {@code transport://host:port}, for messages. */
    public String address() {
        return transport + "://" + host + ":" + port;
    }

    /** Keeps the token out of logs. */
    @Override
    public String toString() {
        return "EndpointInfo[" + address() + ", regionSize=" + regionSize + ", segments=" + segmentSizes.size() + "]";
    }
}
