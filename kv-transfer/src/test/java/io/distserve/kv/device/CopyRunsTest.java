package io.distserve.kv.device;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.transfer.ReadOp;
import java.util.List;
import org.junit.jupiter.api.Test;

class CopyRunsTest {

    @Test
    void encodesRunsAndPieceStartsAsTheKernelReadsThem() {
        CopyRuns runs = CopyRuns.of(List.of(new ReadOp(0, 1000, 64), new ReadOp(128, 0, 16), new ReadOp(4096, 2048, 160)),
                10, 64);
        // 64 -> 1 piece, 16 -> 1 piece, 160 -> 3 pieces (64, 64, 32)
        assertThat(runs.pieces()).isEqualTo(5);
        assertThat(runs.totalBytes()).isEqualTo(240);
        assertThat(runs.encoded()).containsExactly(
                10, 138, 4106,        // sources, with the bias
                1000, 0, 2048,        // destinations
                64, 16, 160,          // lengths
                0, 1, 2, 5);          // piece starts
        assertThat(List.of(runs.runOf(0), runs.runOf(1), runs.runOf(2), runs.runOf(3), runs.runOf(4)))
                .containsExactly(0, 1, 2, 2, 2);
        assertThat(runs.srcEnd()).isEqualTo(4106 + 160);
        assertThat(runs.dstEnd()).isEqualTo(2048 + 160);
    }

    @Test
    void everyByteOfEveryRunIsInExactlyOnePiece() {
        List<ReadOp> ops = List.of(new ReadOp(0, 0, 1), new ReadOp(100, 7, (64 << 10) + 1),
                new ReadOp(1 << 20, 1 << 20, 9L << 20), new ReadOp(77, 5 << 20, 64 << 10));
        CopyRuns runs = CopyRuns.of(ops);
        long[] covered = new long[ops.size()];
        long[] table = runs.encoded();
        for (long p = 0; p < runs.pieces(); p++) {
            int r = runs.runOf(p);
            long off = (p - table[3 * runs.count() + r]) * runs.pieceBytes();
            long n = Math.min(runs.pieceBytes(), runs.length(r) - off);
            assertThat(off).isEqualTo(covered[r]); // pieces of a run come in order, without gaps
            assertThat(n).isPositive();
            covered[r] += n;
        }
        for (int r = 0; r < ops.size(); r++) {
            assertThat(covered[r]).isEqualTo(ops.get(r).length());
        }
    }

    @Test
    void refusesBadPieceSizesAndRanges() {
        assertThatThrownBy(() -> CopyRuns.of(List.of(new ReadOp(0, 0, 16)), 0, 24))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiple of 16");
        assertThatThrownBy(() -> CopyRuns.of(List.of(new ReadOp(0, 0, 0))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("run 0");
        assertThatThrownBy(() -> CopyRuns.of(List.of(new ReadOp(Long.MAX_VALUE, 0, 16)), 1, 64))
                .isInstanceOf(ArithmeticException.class);
        assertThat(CopyRuns.of(List.of()).pieces()).isZero();
    }
}
