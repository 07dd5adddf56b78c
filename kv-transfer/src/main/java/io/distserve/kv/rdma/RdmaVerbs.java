package io.distserve.kv.rdma;

import io.distserve.kv.transfer.TransferException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;

/**
 * The few verbs the rdma transport uses, so that its planning, staging, bookkeeping and failure handling run (and
 * are tested) apart from a NIC: {@link DisniVerbs} binds them to DiSNI; tests use a fake that executes the READs
 * against local memory.
 */
public interface RdmaVerbs extends AutoCloseable {

    /** One registered memory region: where it starts and its keys. */
    record Segment(long address, int lkey, int rkey) {
    }

    /** A memory region registered with the protection domain (local write, remote read); close deregisters it. */
    interface Registered extends AutoCloseable {

        Segment segment();

        /** Idempotent. */
        @Override
        void close();
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

    /** Listens for peers on the RDMA CM address; returns the port bound (the given one, or a free one for 0). */
    int listen(String host, int port) throws TransferException;

    /** Registers host memory: the whole of a direct buffer (a pool segment, a pinned staging buffer). */
    Registered registerHost(ByteBuffer buffer) throws TransferException;

    /**
     * Registers device memory by its device address (GPUDirect RDMA: {@code ibv_reg_mr} on a CUDA pointer, which
     * works only where the nvidia_peermem module is loaded).
     */
    Registered registerDevice(long deviceAddress, int length) throws TransferException;

    /** Connects a queue pair with a send queue of {@code sendDepth} entries to a peer's CM address. */
    QueuePair connect(String host, int port, int sendDepth, Duration timeout) throws TransferException;

    @Override
    void close();
}
