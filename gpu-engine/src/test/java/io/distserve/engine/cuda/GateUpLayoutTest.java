package io.distserve.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The interleaved gate|up layout that the fused SiLU epilogue relies on (host side; no GPU needed). */
class GateUpLayoutTest {

    @Test
    void interleavedGateUpRowsCoverEveryRowOnce() {
        int inter = 344;
        boolean[] seen = new boolean[2 * inter];
        for (int i = 0; i < inter; i++) {
            int g = CudaKernels.interleavedGateUpRow(i, false);
            int u = CudaKernels.interleavedGateUpRow(i, true);
            assertThat(u - g).isEqualTo(CudaKernels.GATE_GROUP);  // the same 16-row tile, rows gid and gid + 8
            assertThat(g / 16).isEqualTo(i / CudaKernels.GATE_GROUP);
            assertThat(seen[g] || seen[u]).isFalse();
            seen[g] = true;
            seen[u] = true;
        }
        assertThat(seen).containsOnly(true);
        assertThat(CudaKernels.interleavedGateUpRow(9, false)).isEqualTo(17);
        assertThat(CudaKernels.interleavedGateUpRow(9, true)).isEqualTo(25);
    }
}
