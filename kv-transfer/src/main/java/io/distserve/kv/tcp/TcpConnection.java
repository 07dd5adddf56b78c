package io.distserve.kv.tcp;

import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.ReadPlan;
import io.distserve.kv.transfer.ReadPlanner;
import io.distserve.kv.transfer.RegionLayout;
import io.distserve.kv.transfer.Tokens;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransportOptions;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * A client connection: {@code streamsPerConnection} sockets to one peer. Each batch is planned (coalesced, split),
 * then its transfers are dealt to the streams, least-loaded first by bytes, so every batch uses all streams and
 * concurrent batches interleave on them; on each stream the requests are pipelined (all sent before any answer is
 * awaited). Thread-safe.
 *
 * <p>If a stream breaks, the batches with transfers on it fail; the next {@link #read} re-dials the broken streams
 * (with the connect timeout given at connect time), so a peer that restarted on the same endpoint is picked up again.
 */
final class TcpConnection implements Connection {

    private final EndpointInfo remote;
    private final RegionLayout remoteLayout;
    private final MemoryRegion local;
    private final TransportOptions options;
    private final ReadPlanner planner;
    private final StagingOptions staging;
    private final Duration connectTimeout;
    private final String threadPrefix;
    private final Consumer<TcpConnection> onClose;
    private final InetSocketAddress address;
    private final byte[] token;
    private final String peer;
    private final TcpStream[] streams; // guarded by this
    private boolean closed; // guarded by this
    private long dials; // guarded by this

    TcpConnection(EndpointInfo remote, MemoryRegion local, TransportOptions options, Duration connectTimeout,
                  String threadPrefix, Consumer<TcpConnection> onClose) {
        this.remote = remote;
        this.remoteLayout = remote.layout();
        this.local = local;
        this.options = options;
        this.planner = new ReadPlanner(options.maxTransferBytes());
        this.staging = StagingOptions.from(options);
        this.connectTimeout = connectTimeout;
        this.threadPrefix = threadPrefix;
        this.onClose = onClose;
        this.address = new InetSocketAddress(remote.host(), remote.port());
        this.token = Tokens.bytes(remote.token() == null ? "" : remote.token());
        this.peer = remote.address();
        this.streams = new TcpStream[options.streamsPerConnection()];
    }

    /** Dials every stream; on failure closes what was opened. */
    void open() throws TransferException {
        List<TcpStream> retired = new ArrayList<>();
        try {
            synchronized (this) {
                redialBroken(retired);
            }
        } catch (TransferException e) {
            close();
            throw e;
        }
    }

    /**
     * Replaces every stream that is missing or broken; the broken ones go to {@code retired}, to be joined once the
     * lock is released (their reader may be completing a future whose callback calls back into this connection).
     * Caller holds the lock.
     */
    private void redialBroken(List<TcpStream> retired) throws TransferException {
        long deadline = System.nanoTime() + connectTimeout.toNanos();
        for (int i = 0; i < streams.length; i++) {
            if (streams[i] != null && streams[i].isUsable()) {
                continue;
            }
            if (streams[i] != null) {
                streams[i].breakStream(new TransferException("replaced"));
                retired.add(streams[i]);
            }
            streams[i] = null;
            TcpStream s = new TcpStream(peer, i, local, staging);
            s.dial(address, token, remote.regionSize(), options, deadline,
                    threadPrefix + remote.host() + ":" + remote.port() + "-s" + i + "-" + (dials++));
            streams[i] = s;
        }
    }

    @Override
    public EndpointInfo remote() {
        return remote;
    }

    @Override
    public TransferFuture read(List<ReadOp> ops) {
        ReadPlan plan = planner.plan(ops, remoteLayout, local.layout()); // throws before anything moves
        List<ReadOp> transfers = plan.transfers();
        InFlightBatch batch = new InFlightBatch(peer, transfers.size(), plan.totalBytes());
        if (transfers.isEmpty()) {
            return batch;
        }
        TcpStream[] use;
        List<TcpStream> retired = new ArrayList<>();
        try {
            synchronized (this) {
                if (closed) {
                    throw new IllegalStateException("connection to " + peer + " is closed");
                }
                redialBroken(retired);
                use = streams.clone();
            }
        } catch (TransferException e) {
            return InFlightBatch.failed(peer, transfers.size(), plan.totalBytes(),
                    new TransferException("reconnecting failed: " + e.getMessage(), e));
        } finally {
            retired.forEach(TcpStream::join);
        }
        // Deal transfers to the least-loaded stream (by bytes); equal block sizes make this round-robin.
        List<List<ReadOp>> share = new ArrayList<>(use.length);
        long[] load = new long[use.length];
        for (int i = 0; i < use.length; i++) {
            share.add(new ArrayList<>());
        }
        for (ReadOp t : transfers) {
            int best = 0;
            for (int i = 1; i < use.length; i++) {
                if (load[i] < load[best]) {
                    best = i;
                }
            }
            share.get(best).add(t);
            load[best] += t.length();
        }
        List<TcpStream> used = new ArrayList<>();
        for (int i = 0; i < use.length; i++) {
            if (!share.get(i).isEmpty()) {
                used.add(use[i]);
            }
        }
        batch.usesStreams(used);
        for (int i = 0; i < use.length; i++) {
            if (!share.get(i).isEmpty()) {
                use[i].submit(share.get(i), batch);
            }
        }
        return batch;
    }

    @Override
    public void close() {
        List<TcpStream> toClose = new ArrayList<>();
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            for (int i = 0; i < streams.length; i++) {
                if (streams[i] != null) {
                    toClose.add(streams[i]);
                    streams[i] = null;
                }
            }
        }
        // Outside the lock: readers may run completion callbacks that call back into this connection.
        TransferException cause = new TransferException("connection to " + peer + " was closed locally");
        toClose.forEach(s -> s.close(cause));
        onClose.accept(this);
    }

    @Override
    public String toString() {
        return "TcpConnection[" + peer + ", streams=" + streams.length + "]";
    }
}
