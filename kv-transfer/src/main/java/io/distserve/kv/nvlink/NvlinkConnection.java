package io.distserve.kv.nvlink;

import io.distserve.kv.device.CopyRuns;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.ImportedMemory;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.ReadPlan;
import io.distserve.kv.transfer.ReadPlanner;
import io.distserve.kv.transfer.RegionLayout;
import io.distserve.kv.transfer.TransferFuture;
import java.util.List;
import java.util.function.Consumer;

/**
 * The decode engine's view of one prefill engine's KV pool, mapped through CUDA IPC. A read is planned (validated
 * against both regions, coalesced), then copied by ONE gather launch on this connection's own stream; the
 * transport's completer completes the batch when the launch's event has. Thread-safe: launches are serialized on
 * the stream. {@link #close()} waits for the gathers in flight before it unmaps the peer's memory.
 */
final class NvlinkConnection implements Connection {

    private final EndpointInfo remote;
    private final RegionLayout remoteLayout;
    private final NvlinkEndpoint endpoint;
    private final ImportedMemory peerMemory;
    private final DeviceRegion local;
    private final GpuStream stream;
    private final GatherCompleter completer;
    private final ReadPlanner planner;
    private final Consumer<NvlinkConnection> onClose;
    private final String peer;
    private int inFlight; // guarded by this
    private boolean closed; // guarded by this

    NvlinkConnection(EndpointInfo remote, NvlinkEndpoint endpoint, ImportedMemory peerMemory, DeviceRegion local,
                     GpuStream stream, GatherCompleter completer, Consumer<NvlinkConnection> onClose) {
        this.remote = remote;
        this.remoteLayout = remote.layout();
        this.endpoint = endpoint;
        this.peerMemory = peerMemory;
        this.local = local;
        this.stream = stream;
        this.completer = completer;
        this.planner = new ReadPlanner(Integer.MAX_VALUE);
        this.onClose = onClose;
        this.peer = "nvlink://" + endpoint.pciBusId() + "/pid" + endpoint.pid();
    }

    @Override
    public EndpointInfo remote() {
        return remote;
    }

    @Override
    public TransferFuture read(List<ReadOp> ops) {
        ReadPlan plan = planner.plan(ops, remoteLayout, local.layout()); // throws before anything moves
        if (plan.transfers().isEmpty()) {
            return GatherBatch.empty(peer);
        }
        CopyRuns runs = CopyRuns.of(plan.transfers(), endpoint.offset(), CopyRuns.DEFAULT_PIECE_BYTES);
        GatherBatch batch = new GatherBatch(peer, plan.totalBytes(), runs.count());
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("connection to " + peer + " is closed");
            }
            local.device().bind();
            GpuEvent done;
            try {
                stream.gather(peerMemory, local.memory(), runs);
                done = stream.record();
            } catch (RuntimeException e) {
                // nothing was launched, or the launch failed: either way no byte will land
                batch.failed(e);
                return batch;
            }
            batch.launched(done);
            inFlight++;
            completer.watch(batch, this::landed);
        }
        return batch;
    }

    private synchronized void landed() {
        inFlight--;
        notifyAll();
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            boolean interrupted = false;
            while (inFlight > 0) { // the peer's memory stays mapped until no gather reads it
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        local.device().bind();
        try {
            stream.close();
        } finally {
            peerMemory.close();
            onClose.accept(this);
        }
    }

    @Override
    public String toString() {
        return "NvlinkConnection[" + peer + "]";
    }
}
