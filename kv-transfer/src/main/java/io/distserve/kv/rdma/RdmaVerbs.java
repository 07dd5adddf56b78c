package io.distserve.kv.rdma;

import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransferException;
import java.time.Duration;
import java.util.List;

/**
 * The few verbs the rdma transport uses, so that its planning, bookkeeping and failure handling run (and are
 * tested) apart from a NIC: {@link DisniVerbs} binds them to DiSNI; tests use a fake that executes the READs
 * against local memory.
 */
public interface RdmaVerbs extends AutoCloseable {

    /** One registered memory region (a segment of the pool): where it starts and its keys. */
    record Segment(long address, int lkey, int rkey) {
    }

    /** The pool registered with the protection domain: one memory region per segment of its layout. */
    record Registration(List<Segment> segments, boolean gpuDirect) {
        public Registration {
            segments = List.copyOf(segments);
        }
    }

    /** One completion-queue entry of a signalled request. */
    record Completion(long wrId, boolean ok, String error) {
    }

    /** A reliable-connected queue pair to one peer. */
    interface QueuePair extends AutoCloseable {

        /**
         * Posts a chain of RDMA READs (one {@code ibv_post_send}); returns at once. The caller keeps the posted and
         * not yet retired requests within the send queue's depth.
         */
        void post(List<ReadWorkRequest> chain) throws TransferException;

        /** The completions that arrived, waiting at most {@code timeout} for the first; empty on timeout. */
        List<Completion> poll(Duration timeout) throws TransferException;

        /** Moves the queue pair to the error state and frees it: no posted READ lands after this returns. */
        @Override
        void close();
    }

    /** Registers the pool once (host memory: its buffers; device memory: through GPUDirect where possible). */
    Registration register(MemoryRegion region) throws TransferException;

    /** Listens for peers on the RDMA CM address; returns the port bound (the given one, or a free one for 0). */
    int listen(String host, int port) throws TransferException;

    /** Connects a queue pair with a send queue of {@code sendDepth} entries to a peer's CM address. */
    QueuePair connect(String host, int port, int sendDepth, Duration timeout) throws TransferException;

    @Override
    void close();
}
