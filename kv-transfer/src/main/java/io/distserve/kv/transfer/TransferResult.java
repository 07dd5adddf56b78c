package io.distserve.kv.transfer;

/**
 * A finished batch.
 *
 * @param bytes     bytes copied
 * @param transfers wire transfers used (after coalescing and splitting)
 * @param nanos     from {@code read()} to the last byte landing
 */
public record TransferResult(long bytes, int transfers, long nanos) {
}
