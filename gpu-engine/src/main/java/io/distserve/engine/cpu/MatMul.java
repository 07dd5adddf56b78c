package io.distserve.engine.cpu;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Matrix products over a batch of tokens, and the thread pool that runs them (and every other parallel loop of the
 * backend).
 *
 * <p>Weights are row-major {@code [rows, cols]} as Hugging Face stores them ({@code [out, in]}); activations are
 * token-major {@code [tokens, cols]}; results are token-major {@code [tokens, rows]}. Each output element
 * {@code (token t, row r)} is one dot product computed by {@link #dot} with a fixed accumulation order (four
 * interleaved partial sums over {@code k mod 4}, then {@code (s0 + s1) + (s2 + s3)}), whatever the batch, the tiling
 * or the number of threads: a token's result is bitwise the same alone or in a batch.
 *
 * <p>Work is split over output rows in contiguous ranges, one per thread; inside a range, tokens are processed in
 * tiles small enough to stay in cache and, inside a tile, four tokens at a time so that each weight element is
 * loaded once for four tokens.
 */
final class MatMul implements AutoCloseable {

    /** A piece of a parallel loop: indices {@code [from, to)}, run as part {@code part} of at most threads(). */
    @FunctionalInterface
    interface RangeTask {
        void run(int part, int from, int to);
    }

    /** Bytes of activations per token tile: a tile stays in L2 while the weight rows stream through. */
    private static final int TILE_BYTES = 256 * 1024;

    /** Below this much work (multiply-adds) a loop is not worth waking a worker for. */
    private static final long MIN_PARALLEL_WORK = 1 << 15;

    private final int threads;
    private final ExecutorService pool;
    private volatile boolean closed;

    MatMul(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        if (threads == 1) {
            this.pool = null;
        } else {
            AtomicInteger counter = new AtomicInteger();
            this.pool = Executors.newFixedThreadPool(threads - 1, r -> {
                Thread t = new Thread(r, "cpu-backend-worker-" + counter.incrementAndGet());
                t.setDaemon(true);
                return t;
            });
        }
    }

    int threads() {
        return threads;
    }

    /**
     * Runs {@code task} over {@code [0, n)} split into at most {@link #threads()} contiguous ranges; the caller runs
     * the first range itself. Returns when every range is done; rethrows the first failure. Loops whose total work
     * ({@code n * workPerItem}, in multiply-adds or so) is too small to pay for a hand-off run on the caller alone.
     */
    void parallelFor(int n, long workPerItem, RangeTask task) {
        if (closed) {
            throw new IllegalStateException("CPU backend thread pool is closed");
        }
        int parts = n * Math.max(1, workPerItem) < MIN_PARALLEL_WORK ? 1 : Math.min(threads, n);
        if (parts <= 1) {
            if (n > 0) {
                task.run(0, 0, n);
            }
            return;
        }
        CountDownLatch done = new CountDownLatch(parts - 1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        for (int p = 1; p < parts; p++) {
            int part = p;
            int from = (int) ((long) n * p / parts);
            int to = (int) ((long) n * (p + 1) / parts);
            pool.execute(() -> {
                try {
                    task.run(part, from, to);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                } finally {
                    done.countDown();
                }
            });
        }
        try {
            task.run(0, 0, (int) ((long) n / parts));
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        }
        try {
            done.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for CPU backend workers", e);
        }
        Throwable t = failure.get();
        if (t instanceof RuntimeException re) {
            throw re;
        } else if (t instanceof Error err) {
            throw err;
        } else if (t != null) {
            throw new IllegalStateException(t);
        }
    }

    /** One projection of a {@link #matmul(int, float[], int, Projection...)}: {@code out = x . w^T}. */
    record Projection(float[] w, int rows, float[] out) {
    }

    /** {@code out[t, r] = dot(w[r, :], x[t, :])} for {@code t < tokens}, {@code r < rows}, in parallel over rows. */
    void matmul(float[] w, int rows, int cols, float[] x, int tokens, float[] out) {
        matmul(cols, x, tokens, new Projection(w, rows, out));
    }

    /**
     * Several projections of the same input (q/k/v, gate/up) in one parallel loop over their stacked output rows,
     * so that the workers are woken once for all of them.
     */
    void matmul(int cols, float[] x, int tokens, Projection... projections) {
        int total = 0;
        for (Projection p : projections) {
            if ((long) p.rows() * cols > p.w().length || (long) tokens * cols > x.length
                    || (long) tokens * p.rows() > p.out().length) {
                throw new IllegalArgumentException("matmul shapes: w " + p.w().length + " for " + p.rows() + "x"
                        + cols + ", x " + x.length + " for " + tokens + " tokens, out " + p.out().length);
            }
            total += p.rows();
        }
        parallelFor(total, (long) cols * tokens, (part, from, to) -> {
            int base = 0;
            for (Projection p : projections) {
                int lo = Math.max(from - base, 0);
                int hi = Math.min(to - base, p.rows());
                if (lo < hi) {
                    rows(p.w(), p.rows(), cols, x, tokens, p.out(), lo, hi);
                }
                base += p.rows();
            }
        });
    }

    /** The serial kernel for output rows {@code [from, to)}. */
    static void rows(float[] w, int rows, int cols, float[] x, int tokens, float[] out, int from, int to) {
        int tile = Math.max(4, (TILE_BYTES / (4 * Math.max(1, cols))) & ~3);
        for (int t0 = 0; t0 < tokens; t0 += tile) {
            int t1 = Math.min(tokens, t0 + tile);
            for (int r = from; r < to; r++) {
                int wo = r * cols;
                int t = t0;
                for (; t + 4 <= t1; t += 4) {
                    dot4(w, wo, x, t * cols, cols, out, t * rows + r, rows);
                }
                for (; t < t1; t++) {
                    out[t * rows + r] = dot(w, wo, x, t * cols, cols);
                }
            }
        }
    }

    /** The one dot product of the backend: four partial sums over {@code k mod 4}, combined pairwise. */
    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        int k = 0;
        for (; k + 4 <= n; k += 4) {
            s0 += a[ao + k] * b[bo + k];
            s1 += a[ao + k + 1] * b[bo + k + 1];
            s2 += a[ao + k + 2] * b[bo + k + 2];
            s3 += a[ao + k + 3] * b[bo + k + 3];
        }
        for (; k < n; k++) {
            s0 += a[ao + k] * b[bo + k];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /**
     * Four tokens against one weight row: bitwise the same as four calls of {@link #dot} (same partial sums, same
     * order), but each weight element is loaded once. Results go to {@code out[oo]}, {@code out[oo + stride]}, ...
     */
    private static void dot4(float[] w, int wo, float[] x, int xo, int n, float[] out, int oo, int stride) {
        int xa = xo, xb = xo + n, xc = xo + 2 * n, xd = xo + 3 * n;
        float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
        float b0 = 0f, b1 = 0f, b2 = 0f, b3 = 0f;
        float c0 = 0f, c1 = 0f, c2 = 0f, c3 = 0f;
        float d0 = 0f, d1 = 0f, d2 = 0f, d3 = 0f;
        int k = 0;
        for (; k + 4 <= n; k += 4) {
            float w0 = w[wo + k], w1 = w[wo + k + 1], w2 = w[wo + k + 2], w3 = w[wo + k + 3];
            a0 += w0 * x[xa + k];
            a1 += w1 * x[xa + k + 1];
            a2 += w2 * x[xa + k + 2];
            a3 += w3 * x[xa + k + 3];
            b0 += w0 * x[xb + k];
            b1 += w1 * x[xb + k + 1];
            b2 += w2 * x[xb + k + 2];
            b3 += w3 * x[xb + k + 3];
            c0 += w0 * x[xc + k];
            c1 += w1 * x[xc + k + 1];
            c2 += w2 * x[xc + k + 2];
            c3 += w3 * x[xc + k + 3];
            d0 += w0 * x[xd + k];
            d1 += w1 * x[xd + k + 1];
            d2 += w2 * x[xd + k + 2];
            d3 += w3 * x[xd + k + 3];
        }
        for (; k < n; k++) {
            float wk = w[wo + k];
            a0 += wk * x[xa + k];
            b0 += wk * x[xb + k];
            c0 += wk * x[xc + k];
            d0 += wk * x[xd + k];
        }
        out[oo] = (a0 + a1) + (a2 + a3);
        out[oo + stride] = (b0 + b1) + (b2 + b3);
        out[oo + 2 * stride] = (c0 + c1) + (c2 + c3);
        out[oo + 3 * stride] = (d0 + d1) + (d2 + d3);
    }

    /** Stops the workers. Idempotent. */
    @Override
    public void close() {
        closed = true;
        if (pool != null) {
            pool.shutdownNow();
        }
    }
}
