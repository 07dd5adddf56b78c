package io.distserve.engine.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class MatMulTest {

    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }

    @Test
    void eachTokenIsBitwiseTheSameAloneOrInABatchWithAnyThreadCount() {
        Random r = new Random(1);
        int rows = 37;
        int cols = 1030; // not a multiple of 4, and 70 tokens cross a token tile
        int tokens = 70;
        float[] w = random(r, rows * cols);
        float[] x = random(r, tokens * cols);
        float[] batched1 = new float[tokens * rows];
        float[] batched3 = new float[tokens * rows];
        try (MatMul one = new MatMul(1); MatMul three = new MatMul(3)) {
            one.matmul(w, rows, cols, x, tokens, batched1);
            three.matmul(w, rows, cols, x, tokens, batched3);
            assertArrayEquals(batched1, batched3, 0f);
            for (int t = 0; t < tokens; t++) {
                float[] alone = new float[rows];
                three.matmul(w, rows, cols, Arrays.copyOfRange(x, t * cols, (t + 1) * cols), 1, alone);
                assertArrayEquals(Arrays.copyOfRange(batched1, t * rows, (t + 1) * rows), alone, 0f, "token " + t);
                for (int row = 0; row < rows; row++) {
                    double exact = 0;
                    for (int k = 0; k < cols; k++) {
                        exact += (double) w[row * cols + k] * x[t * cols + k];
                    }
                    assertEquals(exact, alone[row], 1e-3);
                }
            }
        }
    }

    @Test
    void stackedProjectionsEqualSeparateOnes() {
        Random r = new Random(2);
        int cols = 96;
        int tokens = 9;
        float[] x = random(r, tokens * cols);
        float[] wa = random(r, 50 * cols);
        float[] wb = random(r, 7 * cols);
        float[] a = new float[tokens * 50];
        float[] b = new float[tokens * 7];
        float[] a2 = new float[tokens * 50];
        float[] b2 = new float[tokens * 7];
        try (MatMul mm = new MatMul(2)) {
            mm.matmul(cols, x, tokens, new MatMul.Projection(wa, 50, a), new MatMul.Projection(wb, 7, b));
            mm.matmul(wa, 50, cols, x, tokens, a2);
            mm.matmul(wb, 7, cols, x, tokens, b2);
            assertArrayEquals(a2, a, 0f);
            assertArrayEquals(b2, b, 0f);
            assertThrows(IllegalArgumentException.class, () -> mm.matmul(wa, 51, cols, x, tokens, a));
        }
    }

    @Test
    void failuresInWorkersReachTheCallerAndClosedPoolsRefuseWork() {
        MatMul mm = new MatMul(2);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> mm.parallelFor(10, 1L << 20,
                (part, from, to) -> {
                    if (part == 1) {
                        throw new IllegalStateException("boom");
                    }
                }));
        assertEquals("boom", e.getMessage());
        mm.close();
        mm.close();
        assertThrows(IllegalStateException.class, () -> mm.parallelFor(10, 1, (part, from, to) -> { }));
    }
}
