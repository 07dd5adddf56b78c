package io.distserve.engine;

import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.sampling.RepetitionPenalties;
import io.distserve.engine.safetensors.DType;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * A deterministic stand-in for a model that really uses its paged KV cache: every token it is given is stored at
 * (block, slot) through the slice's block table, and the logits at position p are computed only from what it reads
 * back through the table for positions 0..p. The favoured next token is {@code (sum of tokens * 31 + p) % vocab}.
 * A wrong block table, a skipped position or a block reused while still in use reads the wrong (or a stale) entry
 * and changes the tokens, or fails loudly.
 */
public final class FakeBackend implements ComputeBackend {

    private final int vocab;
    private final KvCacheLayout layout;
    private final ModelConfig config;
    /** (block * blockSize + slot) -> (position << 32 | token). */
    private final Map<Long, Long> kv = new ConcurrentHashMap<>();
    private final List<List<SequenceSlice>> history = new CopyOnWriteArrayList<>();
    private final AtomicInteger forwardCalls = new AtomicInteger();
    private final AtomicInteger greedyCalls = new AtomicInteger();
    private final AtomicInteger sampledCalls = new AtomicInteger();

    private final AtomicInteger penalisedCalls = new AtomicInteger();
    private volatile Predicate<List<SequenceSlice>> failWhen = b -> false;
    private volatile long delayMillis;

    public FakeBackend(int vocab, int blockSize, int numBlocks, int maxPositions, int eosId) {
        this.vocab = vocab;
        this.layout = new KvCacheLayout(1, 1, 1, blockSize, numBlocks, DType.F32);
        this.config = new ModelConfig("fake", 8, 8, 1, 1, 1, 1, vocab, maxPositions, 1e6, 1e-6, true, false, -1,
                List.of(eosId), "float32");
    }

    /** The next token a greedy run of this model picks after {@code tokens} (the reference for tests). */
    public static int favoured(long tokenSum, int position, int vocab) {
        return (int) ((tokenSum * 31 + position) % vocab);
    }

    /** Greedy reference generation without any paging: what the engine must reproduce at temperature 0. */
    public static int[] reference(int[] prompt, int maxTokens, int vocab, int eosId, boolean ignoreEos) {
        List<Integer> out = new ArrayList<>();
        long sum = 0;
        for (int t : prompt) {
            sum += t;
        }
        int len = prompt.length;
        while (out.size() < maxTokens) {
            int next = favoured(sum, len - 1, vocab);
            out.add(next);
            sum += next;
            len++;
            if (next == eosId && !ignoreEos) {
                break;
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Makes forward throw while the predicate holds for a batch. */
    public void failWhen(Predicate<List<SequenceSlice>> predicate) {
        this.failWhen = predicate;
    }

    public void delayMillis(long millis) {
        this.delayMillis = millis;
    }

    public List<List<SequenceSlice>> history() {
        return history;
    }

    public int forwardCalls() {
        return forwardCalls.get();
    }

    /** Steps that asked for greedy ids ({@link #forwardGreedy}, the interface's default, which calls forward). */
    public int greedyCalls() {
        return greedyCalls.get();
    }

    @Override
    public int[] forwardGreedy(List<SequenceSlice> batch) {
        greedyCalls.incrementAndGet();
        return ComputeBackend.super.forwardGreedy(batch);
    }

    /** Steps that asked for sampled ids with a repetition penalty on some row. */
    public int penalisedCalls() {
        return penalisedCalls.get();
    }

    /** Steps that asked for sampled ids ({@link #forwardSampled}, the interface's default). */
    public int sampledCalls() {
        return sampledCalls.get();
    }

    @Override
    public int[] forwardSampled(List<SequenceSlice> batch, float[] temperature, int[] topK, float[] topP,
                                float[] minP, double[] uniform, RepetitionPenalties penalties) {
        sampledCalls.incrementAndGet();
        if (penalties.any()) {
            penalisedCalls.incrementAndGet();
        }
        return ComputeBackend.super.forwardSampled(batch, temperature, topK, topP, minP, uniform, penalties);
    }

    /** Copies one block's entries to another backend's block (a KV migration). */
    public void copyBlockTo(int srcBlock, FakeBackend dst, int dstBlock) {
        int bs = layout.blockSize();
        for (int slot = 0; slot < bs; slot++) {
            Long v = kv.get((long) srcBlock * bs + slot);
            if (v == null) {
                dst.kv.remove((long) dstBlock * bs + slot);
            } else {
                dst.kv.put((long) dstBlock * bs + slot, v);
            }
        }
    }

    @Override
    public String name() {
        return "fake";
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public KvCacheLayout kvLayout() {
        return layout;
    }

    @Override
    public List<float[]> forward(List<SequenceSlice> batch) {
        forwardCalls.incrementAndGet();
        history.add(List.copyOf(batch));
        if (failWhen.test(batch)) {
            throw new IllegalStateException("injected backend failure");
        }
        if (delayMillis > 0) {
            try {
                Thread.sleep(delayMillis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        int bs = layout.blockSize();
        // Write all slices first, like a real backend writes K/V before attention reads it.
        for (SequenceSlice s : batch) {
            if (s.blockTable().length * bs < s.endPosition()) {
                throw new IllegalArgumentException("block table of " + s.sequenceId() + " does not cover position "
                        + (s.endPosition() - 1));
            }
            for (int i = 0; i < s.length(); i++) {
                int pos = s.startPosition() + i;
                int block = s.blockTable()[pos / bs];
                if (block < 0 || block >= layout.numBlocks()) {
                    throw new IllegalArgumentException("block id " + block + " out of the pool");
                }
                kv.put((long) block * bs + pos % bs, ((long) pos << 32) | (s.tokens()[i] & 0xFFFFFFFFL));
            }
        }
        List<float[]> out = new ArrayList<>();
        for (SequenceSlice s : batch) {
            switch (s.logits()) {
                case NONE -> { }
                case LAST -> out.add(logitsAt(s, s.endPosition() - 1));
                case ALL -> {
                    for (int p = s.startPosition(); p < s.endPosition(); p++) {
                        out.add(logitsAt(s, p));
                    }
                }
            }
        }
        return out;
    }

    private float[] logitsAt(SequenceSlice s, int pos) {
        int bs = layout.blockSize();
        long sum = 0;
        for (int p = 0; p <= pos; p++) {
            int block = s.blockTable()[p / bs];
            Long v = kv.get((long) block * bs + p % bs);
            if (v == null || (int) (v >>> 32) != p) {
                throw new IllegalStateException("sequence " + s.sequenceId() + " reads " + (v == null ? "no" : "stale")
                        + " KV at position " + p + " (block " + block + ")");
            }
            sum += (int) (v & 0xFFFFFFFFL);
        }
        float[] logits = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            logits[i] = ((i * 7 + pos) % 13) / 13f;
        }
        logits[favoured(sum, pos, vocab)] = 5f;
        return logits;
    }

    @Override
    public void close() {
    }
}
