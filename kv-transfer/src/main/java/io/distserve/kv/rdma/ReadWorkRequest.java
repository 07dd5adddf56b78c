package io.distserve.kv.rdma;

/**
 * One RDMA READ work request: {@code length} bytes from the peer's {@code remoteAddress} (under {@code rkey}) into
 * this engine's {@code localAddress} (under {@code lkey}). Only signalled requests produce a completion.
 *
 * @param wrId the request's id: the batch in the high 32 bits, its index in the batch in the low 32
 */
public record ReadWorkRequest(long wrId, long localAddress, int lkey, long remoteAddress, int rkey, int length,
                              boolean signaled) {

    public static long wrId(int batch, int index) {
        return ((long) batch << 32) | (index & 0xFFFF_FFFFL);
    }

    public int batch() {
        return (int) (wrId >>> 32);
    }

    public int index() {
        return (int) wrId;
    }
}
