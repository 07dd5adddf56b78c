package io.distserve.engine;

import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.sampling.RepetitionPenalties;
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
     * The same step as {@link #forward}, returning only the greedy token of each logit row
     * ({@link io.distserve.engine.sampling.Sampler#greedyToken}: highest logit, lowest id on ties, NaN never wins;
     * -1 for a row that is all NaN). The engine calls it when every sampled sequence of the step is plainly greedy,
     * so that a device backend can pick the tokens where the logits are and copy back ids instead of
     * {@code vocabSize} floats per row. The default argmaxes {@link #forward}'s rows on the host.
     */
    default int[] forwardGreedy(List<SequenceSlice> batch) {
        List<float[]> rows = forward(batch);
        int[] ids = new int[rows.size()];
        int vocab = config().vocabSize();
        for (int i = 0; i < ids.length; i++) {
            float[] row = rows.get(i);
            if (row == null || row.length != vocab) {
                throw new IllegalStateException("backend returned a logit row of " + (row == null ? "null"
                        : row.length) + " entries, expected " + vocab);
            }
            ids[i] = io.distserve.engine.sampling.Sampler.greedyToken(row);
        }
        return ids;
    }

    /**
     * The same step as {@link #forward}, returning one sampled token per logit row: row {@code i}, after its
     * repetition penalty ({@code penalties}, {@link RepetitionPenalties}), is sampled with
     * {@link io.distserve.engine.sampling.RowSampling#sample} from {@code temperature[i]} (0: greedy, the token of
     * {@link #forwardGreedy} on the penalised row), {@code topK[i]} (0: off), {@code topP[i]} (1: off),
     * {@code minP[i]} (0: off) and the caller's uniform {@code uniform[i]} in [0, 1). A device backend penalises and
     * samples where the logits are and copies back ids only; the default does the same on the host with the same
     * arithmetic. -1 for a row that is all NaN.
     */
    default int[] forwardSampled(List<SequenceSlice> batch, float[] temperature, int[] topK, float[] topP,
                                 float[] minP, double[] uniform, RepetitionPenalties penalties) {
        List<float[]> rows = forward(batch);
        int[] ids = new int[rows.size()];
        int vocab = config().vocabSize();
        for (int i = 0; i < ids.length; i++) {
            float[] row = rows.get(i);
            if (row == null || row.length != vocab) {
                throw new IllegalStateException("backend returned a logit row of " + (row == null ? "null"
                        : row.length) + " entries, expected " + vocab);
            }
            penalties.applyTo(i, row);
            ids[i] = io.distserve.engine.sampling.RowSampling.sample(row, temperature[i], topK[i], topP[i], minP[i],
                    uniform[i]);
        }
        return ids;
    }

    /**
     * The KV pool as host memory, in {@link KvCacheLayout} order (block {@code b} at absolute byte
     * {@code b * bytesPerBlock} across the chunks, no block straddling two), for the KV-transfer layer; empty when
     * the pool is not in host memory (CUDA).
     */
    default List<java.nio.ByteBuffer> hostKvChunks() {
        return List.of();
    }

    /**
     * The KV pool as device memory, for the KV-transfer layer (nvlink, and tcp staged through pinned buffers); empty
     * when the pool is in host memory ({@link #hostKvChunks}).
     */
    default java.util.Optional<io.distserve.engine.cuda.DeviceKvPool> deviceKvPool() {
        return java.util.Optional.empty();
    }

    /** Releases native memory and threads. Idempotent. */
    @Override
    void close();
}
