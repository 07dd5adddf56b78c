package io.distserve.kv.tcp;

import io.distserve.kv.transfer.TransportOptions;

/**
 * How the tcp transport stages a device-memory region through pinned host buffers: {@code buffers} buffers of
 * {@code chunkBytes} each, per socket. While one buffer's bytes are on the wire, the next chunks are already being
 * copied by the GPU's copy engine (device-to-host on the serving side, host-to-device on the pulling side).
 *
 * <p>Set through {@link TransportOptions#extra()}: {@value #CHUNK_KEY} and {@value #BUFFERS_KEY}.
 */
record StagingOptions(int chunkBytes, int buffers) {

    static final String CHUNK_KEY = "tcp.stagingChunkBytes";
    static final String BUFFERS_KEY = "tcp.stagingBuffers";
    /** 2 MiB: a copy engine moves it in ~50 us, loopback tcp in ~0.5 ms, so staging stays ahead of the socket. */
    static final int DEFAULT_CHUNK_BYTES = 2 << 20;
    static final int DEFAULT_BUFFERS = 4;

    StagingOptions {
        if (chunkBytes < 4096 || chunkBytes > (256 << 20)) {
            throw new IllegalArgumentException(CHUNK_KEY + " must be in [4096, 256 MiB], got " + chunkBytes);
        }
        if (buffers < 2 || buffers > 64) {
            throw new IllegalArgumentException(BUFFERS_KEY + " must be in [2, 64], got " + buffers);
        }
    }

    static StagingOptions from(TransportOptions options) {
        return new StagingOptions(intValue(options, CHUNK_KEY, DEFAULT_CHUNK_BYTES),
                intValue(options, BUFFERS_KEY, DEFAULT_BUFFERS));
    }

    private static int intValue(TransportOptions options, String key, int fallback) {
        String v = options.extra().get(key);
        if (v == null || v.isBlank()) {
            return fallback;
        }
        try {
            return Integer.parseInt(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " must be an integer, got '" + v + "'");
        }
    }

    /** Chunks a transfer of {@code length} bytes is cut into. */
    int chunksOf(int length) {
        return (int) (((long) length + chunkBytes - 1) / chunkBytes);
    }

    /** Bytes of chunk {@code i} of a transfer of {@code length} bytes. */
    int chunkLength(int length, int i) {
        return (int) Math.min(chunkBytes, (long) length - (long) i * chunkBytes);
    }
}
