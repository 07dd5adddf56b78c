package io.distserve.kv.transfer;

import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.time.Duration;

/**
 * How a serving side hangs up on a peer it has refused (bad hello, bad token, unknown op) after writing why.
 * Closing a socket with unread bytes makes the kernel answer the peer with a reset, which can reach it before it has
 * read the refusal (and fails its writes still in progress): it would see "connection reset" or "broken pipe"
 * instead of the reason. So the socket is half-closed and what the peer still sends is discarded until it hangs up,
 * for at most a time limit and {@link #MAX_DRAIN_BYTES}; the caller closes the socket afterwards.
 */
public final class RefusedPeers {

    /** What a refused peer may still send before we hang up regardless. */
    public static final long MAX_DRAIN_BYTES = 64 * 1024;

    private RefusedPeers() {
    }

    /**
     * Half-closes {@code socket} and reads {@code in} (the socket's input, possibly buffered) to its end, for at most
     * {@code limit} and {@link #MAX_DRAIN_BYTES}. Returns whether the peer hung up within them; never throws (a reset
     * or a socket closed by a shutting-down server just ends the wait).
     */
    public static boolean drain(Socket socket, InputStream in, Duration limit) {
        try {
            socket.shutdownOutput();
            socket.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, limit.toMillis())));
            long deadline = System.nanoTime() + limit.toNanos();
            byte[] sink = new byte[4096];
            long left = MAX_DRAIN_BYTES;
            while (left > 0 && System.nanoTime() < deadline) {
                int n = in.read(sink, 0, (int) Math.min(sink.length, left));
                if (n < 0) {
                    return true;
                }
                left -= n;
            }
            return false;
        } catch (IOException e) {
            return false;
        }
    }
}
