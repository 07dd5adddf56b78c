package io.distserve.kv.transfer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.util.List;
import org.junit.jupiter.api.Test;

class ByteBufferRegionTest {

    private static ByteBuffer filled(int size, int value) {
        ByteBuffer b = ByteBuffer.allocateDirect(size);
        for (int i = 0; i < size; i++) {
            b.put(i, (byte) value);
        }
        return b;
    }

    @Test
    void mapsAbsoluteOffsetsToChunksOfDifferentSizes() {
        ByteBufferRegion r = new ByteBufferRegion(List.of(filled(100, 1), filled(50, 2), filled(200, 3)));
        assertThat(r.size()).isEqualTo(350);
        assertThat(r.layout().segmentSizes()).containsExactly(100L, 50L, 200L);
        assertThat(r.slice(0, 100).get(99)).isEqualTo((byte) 1);
        assertThat(r.slice(100, 50).get(0)).isEqualTo((byte) 2);
        assertThat(r.slice(149, 1).get(0)).isEqualTo((byte) 2);
        assertThat(r.slice(150, 200).get(199)).isEqualTo((byte) 3);
        assertThat(r.layout().segmentEnd(0)).isEqualTo(100);
        assertThat(r.layout().segmentEnd(100)).isEqualTo(150);
        assertThat(r.layout().segmentEnd(349)).isEqualTo(350);
    }

    @Test
    void sliceSharesMemoryAndHasItsOwnPosition() {
        ByteBufferRegion r = ByteBufferRegion.allocateDirect(2, 64);
        ByteBuffer a = r.slice(64 + 8, 8);
        a.putLong(0x0102030405060708L);
        assertThat(r.slice(64, 16).getLong(8)).isEqualTo(0x0102030405060708L);
        assertThat(r.slice(64, 16).position()).isZero();
    }

    @Test
    void regionStartsAtTheCallersPositionAndIgnoresLaterMoves() {
        ByteBuffer b = filled(10, 0);
        b.put(4, (byte) 9);
        b.position(4);
        ByteBufferRegion r = new ByteBufferRegion(List.of(b));
        b.position(0);
        assertThat(r.size()).isEqualTo(6);
        assertThat(r.slice(0, 1).get(0)).isEqualTo((byte) 9);
    }

    @Test
    void rejectsRangesCrossingAChunkEnd() {
        ByteBufferRegion r = ByteBufferRegion.allocateDirect(3, 64);
        assertThatThrownBy(() -> r.slice(60, 8)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("crosses the end of chunk 0 at 64");
        assertThatThrownBy(() -> r.slice(127, 2)).hasMessageContaining("chunk 1 at 128");
        assertThat(r.slice(56, 8).remaining()).isEqualTo(8); // touching the end is fine
        assertThat(r.slice(128, 64).remaining()).isEqualTo(64);
    }

    @Test
    void rejectsRangesOutsideTheRegion() {
        ByteBufferRegion r = ByteBufferRegion.allocateDirect(2, 64);
        assertThatThrownBy(() -> r.slice(-1, 4)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> r.slice(128, 1)).hasMessageContaining("outside the region");
        assertThatThrownBy(() -> r.slice(120, 16)).hasMessageContaining("outside the region");
        assertThatThrownBy(() -> r.slice(Long.MAX_VALUE, 16)).hasMessageContaining("overflows");
        assertThatThrownBy(() -> r.slice(0, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> r.slice(0, -5)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void rejectsEmptyOrMissingChunks() {
        assertThatThrownBy(() -> new ByteBufferRegion(List.of())).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new ByteBufferRegion(List.of(ByteBuffer.allocateDirect(0))))
                .hasMessageContaining("chunk 0");
    }
}
