package io.distserve.kv.transfer;

/**
 * Copy {@code length} bytes from the remote region at {@code remoteOffset} into the local region at
 * {@code localOffset}. Values are validated by {@link ReadPlanner} (with the op's index in the message), not here,
 * so that a batch fails as a whole with one clear error before anything moves.
 */
public record ReadOp(long remoteOffset, long localOffset, long length) {

    public long remoteEnd() {
        return remoteOffset + length;
    }

    public long localEnd() {
        return localOffset + length;
    }
}
