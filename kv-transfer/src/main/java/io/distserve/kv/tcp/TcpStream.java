package io.distserve.kv.tcp;

import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.RemoteTransferException;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferTimeoutException;
import io.distserve.kv.transfer.TransportOptions;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One socket of a client connection. Callers {@link #submit} transfers: their request frames are written at once,
 * all of them in one write, without waiting for answers (pipelining), and the transfers queue up in order. A reader
 * thread takes responses in that same order and lands each payload in the local region through a
 * {@link RegionReceiver}: straight into a slice of a host region's direct buffer (the kernel copies into it; nothing
 * is copied in the JVM), or staged into GPU memory through pinned buffers.
 *
 * <p>A stream that fails (EOF, reset, protocol violation, abort) is broken for good: everything queued on it fails
 * and its reader exits; the connection replaces it with a fresh one on the next read.
 */
final class TcpStream {

    private static final Logger log = LoggerFactory.getLogger(TcpStream.class);

    private final String peer;
    private final int index;
    private final MemoryRegion local;
    private final StagingOptions staging;
    private final Object writeLock = new Object();
    private final Object stateLock = new Object();
    private final ArrayDeque<PendingRead> pending = new ArrayDeque<>(); // guarded by stateLock
    private boolean broken; // guarded by stateLock
    private SocketChannel ch;
    private Thread reader;
    private long nextId; // guarded by writeLock

    TcpStream(String peer, int index, MemoryRegion local, StagingOptions staging) {
        this.peer = peer;
        this.index = index;
        this.local = local;
        this.staging = staging;
    }

    /** Dials, authenticates, starts the reader. On failure everything is closed and no thread is left. */
    void dial(InetSocketAddress address, byte[] token, long expectedRegionSize, TransportOptions options,
              long deadlineNanos, String threadName) throws TransferException {
        SocketChannel c = null;
        try {
            c = SocketChannel.open();
            c.setOption(StandardSocketOptions.TCP_NODELAY, true); // request frames are tiny: don't let Nagle hold them
            if (options.socketBufferBytes() > 0) {
                // Before connect, so the receive window scale is negotiated for the large buffer.
                c.setOption(StandardSocketOptions.SO_RCVBUF, options.socketBufferBytes());
                c.setOption(StandardSocketOptions.SO_SNDBUF, options.socketBufferBytes());
            }
            c.socket().connect(address, remainingMillis(deadlineNanos));
            WireProtocol.writeFully(c, WireProtocol.hello(token));
            c.socket().setSoTimeout(remainingMillis(deadlineNanos));
            DataInputStream in = new DataInputStream(c.socket().getInputStream());
            int magic = in.readInt();
            short version = in.readShort();
            byte status = in.readByte();
            long regionSize = in.readLong();
            int len = in.readUnsignedShort();
            if (magic != WireProtocol.MAGIC || len > WireProtocol.MAX_SHORT_STRING) {
                throw new TransferException(peer + " is not a kv transfer endpoint (bad welcome)");
            }
            byte[] msg = new byte[len];
            in.readFully(msg);
            if (status != WireProtocol.WELCOME_OK) {
                throw new RemoteTransferException(peer + " refused the connection: "
                        + new String(msg, StandardCharsets.UTF_8));
            }
            if (version != WireProtocol.VERSION) {
                throw new TransferException(peer + " answered with protocol version " + version);
            }
            if (regionSize != expectedRegionSize) {
                throw new TransferException(peer + " serves " + regionSize + " bytes but its endpoint info says "
                        + expectedRegionSize + " (stale endpoint info?)");
            }
            c.socket().setSoTimeout(0);
        } catch (SocketTimeoutException e) {
            TcpServer.closeQuietly(c);
            throw new TransferTimeoutException("connecting to " + peer + " timed out");
        } catch (TransferException e) {
            TcpServer.closeQuietly(c);
            throw e;
        } catch (EOFException e) {
            TcpServer.closeQuietly(c);
            throw new TransferException(peer + " closed the connection during the handshake", e);
        } catch (ConnectException e) {
            TcpServer.closeQuietly(c);
            throw new TransferException("cannot connect to " + peer + ": " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            TcpServer.closeQuietly(c);
            throw new TransferException("cannot connect to " + peer + ": " + e, e);
        }
        ch = c;
        reader = new Thread(this::readLoop, threadName);
        reader.setDaemon(true); // close() joins it; daemon only so a forgotten close can't hang JVM exit
        reader.start();
    }

    private static int remainingMillis(long deadlineNanos) throws SocketTimeoutException {
        long ms = (deadlineNanos - System.nanoTime()) / 1_000_000;
        if (ms <= 0) {
            throw new SocketTimeoutException("deadline passed");
        }
        return (int) Math.min(Integer.MAX_VALUE, ms);
    }

    boolean isUsable() {
        synchronized (stateLock) {
            return !broken && ch != null;
        }
    }

    /** Queues the transfers and sends their requests; if the stream is (or becomes) broken they fail instead. */
    void submit(List<ReadOp> ops, InFlightBatch batch) {
        synchronized (writeLock) {
            List<PendingRead> reads = new ArrayList<>(ops.size());
            ByteBuffer frames = ByteBuffer.allocate(ops.size() * WireProtocol.REQUEST_BYTES);
            for (ReadOp op : ops) {
                long id = nextId++;
                reads.add(new PendingRead(batch, id, op));
                frames.putInt(WireProtocol.OP_READ).putLong(id).putLong(op.remoteOffset()).putInt((int) op.length());
            }
            frames.flip();
            synchronized (stateLock) {
                if (broken) {
                    reads.forEach(r -> r.batch().pieceFailed(new TransferException("stream " + index + " to " + peer
                            + " is broken")));
                    return;
                }
                pending.addAll(reads); // before writing: the answer may arrive before write() returns
            }
            try {
                WireProtocol.writeFully(ch, frames);
            } catch (IOException e) {
                breakStream(new TransferException("sending requests to " + peer + " failed: " + e, e));
            }
        }
    }

    private void readLoop() {
        ByteBuffer hdr = ByteBuffer.allocateDirect(WireProtocol.RESPONSE_HEADER_BYTES);
        ByteBuffer scratch = null;
        PendingRead current = null;
        RegionReceiver receiver = null;
        try {
            receiver = RegionReceiver.forRegion(local, staging);
            while (true) {
                hdr.clear();
                if (!WireProtocol.readFully(ch, hdr)) {
                    throw new EOFException("peer closed the connection");
                }
                hdr.flip();
                int status = hdr.getInt();
                long id = hdr.getLong();
                int length = hdr.getInt();
                synchronized (stateLock) {
                    current = pending.poll();
                }
                if (current == null || current.requestId() != id) {
                    throw new IOException("protocol error: response for request " + id + " but expected "
                            + (current == null ? "none" : String.valueOf(current.requestId())));
                }
                if (status == WireProtocol.STATUS_ERROR) {
                    if (length < 0 || length > WireProtocol.MAX_ERROR_MESSAGE) {
                        throw new IOException("protocol error: error message of " + length + " bytes");
                    }
                    ByteBuffer msg = ByteBuffer.allocate(length);
                    WireProtocol.readFully(ch, msg);
                    String text = new String(msg.array(), StandardCharsets.UTF_8);
                    PendingRead failed = current;
                    current = null;
                    failed.batch().pieceFailed(new RemoteTransferException(peer + " refused: " + text));
                    continue;
                }
                if (status != WireProtocol.STATUS_DATA || length != current.op().length()) {
                    throw new IOException("protocol error: status " + status + ", length " + length + " for a read of "
                            + current.op().length() + " bytes");
                }
                PendingRead done = current;
                if (done.batch().isFailed()) {
                    // The batch already failed and may have been handed back: keep the stream in sync but don't
                    // touch the caller's memory.
                    if (scratch == null) {
                        scratch = ByteBuffer.allocateDirect(1 << 20);
                    }
                    drain(length, scratch);
                    current = null;
                    done.batch().pieceDone(length);
                } else {
                    receiver.receive(ch, done.op().localOffset(), length, () -> done.batch().pieceDone(length));
                    current = null;
                }
                boolean idle;
                synchronized (stateLock) {
                    idle = pending.isEmpty();
                }
                if (idle) {
                    receiver.flush(); // nothing more is coming soon: land what is in flight now
                }
            }
        } catch (IOException | RuntimeException e) {
            TransferException cause = e instanceof java.nio.channels.AsynchronousCloseException
                    ? new TransferException("stream " + index + " to " + peer + " was closed")
                    : new TransferException("stream " + index + " to " + peer + ": " + e.getMessage(), e);
            if (receiver != null) {
                try {
                    receiver.flush(); // copies in flight land (and count) before anything is failed
                } catch (RuntimeException flushFailed) {
                    log.warn("stream {} to {}: waiting for device copies failed: {}", index, peer,
                            flushFailed.toString());
                }
            }
            if (current != null) {
                // Only now, with this thread out of the read and no copy of it in flight, may the batch complete.
                current.batch().pieceFailed(cause);
            }
            breakStream(cause);
        } finally {
            if (receiver != null) {
                try {
                    receiver.close();
                } catch (RuntimeException e) {
                    log.warn("stream {} to {}: releasing staging buffers failed: {}", index, peer, e.toString());
                }
            }
        }
    }

    private void drain(int length, ByteBuffer scratch) throws IOException {
        int left = length;
        while (left > 0) {
            scratch.clear().limit(Math.min(left, scratch.capacity()));
            int n = ch.read(scratch);
            if (n < 0) {
                throw new EOFException("peer closed the connection mid-transfer");
            }
            left -= n;
        }
    }

    /**
     * Marks the stream broken, closes its socket (which unblocks the reader) and fails every queued transfer. The
     * transfer the reader is in the middle of is failed by the reader itself once it is out of the read.
     */
    void breakStream(TransferException cause) {
        List<PendingRead> failed;
        synchronized (stateLock) {
            if (broken) {
                return;
            }
            broken = true;
            failed = new ArrayList<>(pending);
            pending.clear();
        }
        TcpServer.closeQuietly(ch);
        if (!failed.isEmpty()) {
            log.debug("stream {} to {} broke with {} transfers queued: {}", index, peer, failed.size(),
                    cause.getMessage());
        }
        for (PendingRead r : failed) {
            r.batch().pieceFailed(cause);
        }
    }

    /** Breaks the stream and joins its reader. */
    void close(TransferException cause) {
        breakStream(cause);
        join();
    }

    /** Waits for the reader to exit (it does once the stream is broken). */
    void join() {
        TcpServer.join(reader);
    }
}
