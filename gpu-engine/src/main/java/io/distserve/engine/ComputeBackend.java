package io.distserve.engine;

import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import java.util.List;

/**
 * Runs the model. A backend owns the weights and the storage of the paged KV cache (host memory for the CPU
 * backend, device memory for CUDA); which blocks belong to which sequence is decided outside, by the block manager,
 * and handed in through each slice's block table.
 */
public interface ComputeBackend extends AutoCloseable {

    String name();

    ModelConfig config();

    KvCacheLayout kvLayout();

    /**
     * One forward step over a batch of slices (prefill chunks and single-token decodes may be mixed).
     *
     * @return the requested logits, in slice order and, inside a slice, in position order; each row has
     *         {@code config().vocabSize()} floats
     */
    List<float[]> forward(List<SequenceSlice> batch);

    /**
     * The KV pool as host memory, in {@link KvCacheLayout} order (block {@code b} at absolute byte
     * {@code b * bytesPerBlock} across the chunks, no block straddling two), for the KV-transfer layer; empty when
     * the pool is not in host memory (CUDA).
     */
    default List<java.nio.ByteBuffer> hostKvChunks() {
        return List.of();
    }

    /** Releases native memory and threads. Idempotent. */
    @Override
    void close();
}
