package io.distserve.kv.rdma;

import java.util.ArrayList;
import java.util.List;

/**
 * What one connect to a peer made, and what a failure tears down together: the queue pairs, and the staging channel
 * when the peer's pool is staged. A connection makes a new one on the read after a failure.
 */
final class PeerLinks {

    private final List<QueuePairLink> queuePairs = new ArrayList<>();
    private StagingClient staging;
    private String failure; // guarded by this

    /**
     * Records why these links fail and returns the first reason recorded: once one queue pair has failed, the
     * others' errors (closed under a poster, flushed) are consequences, not news.
     */
    synchronized String failure(String why) {
        if (failure == null) {
            failure = why;
        }
        return failure;
    }

    void add(QueuePairLink link) {
        queuePairs.add(link);
    }

    void staging(StagingClient client) {
        staging = client;
    }

    List<QueuePairLink> queuePairs() {
        return queuePairs;
    }

    /** The staging channel; null when the peer's pool is read where it is. */
    StagingClient staging() {
        return staging;
    }

    /** Closes every queue pair (no READ lands after this) and the staging channel. Idempotent. */
    void close() {
        queuePairs.forEach(QueuePairLink::close);
        if (staging != null) {
            staging.close();
        }
    }
}
