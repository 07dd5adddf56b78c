package io.distserve.kv.transfer;

import java.util.Arrays;
import java.util.List;

/**
 * The shape of a memory region: consecutive segments ("chunks") laid end to end from offset 0. A single transfer
 * never crosses a segment end, because the bytes on either side of it are not adjacent in memory. The layout is all
 * a peer needs to know about the remote region to plan reads, so it travels in {@link EndpointInfo#segmentSizes()}.
 */
public final class RegionLayout {

    private final long[] starts; // starts[i] = absolute offset of segment i; starts[n] = total size
    private final List<Long> sizes;

    public RegionLayout(List<Long> segmentSizes) {
        if (segmentSizes == null || segmentSizes.isEmpty()) {
            throw new IllegalArgumentException("a region needs at least one segment");
        }
        starts = new long[segmentSizes.size() + 1];
        for (int i = 0; i < segmentSizes.size(); i++) {
            Long s = segmentSizes.get(i);
            if (s == null || s <= 0) {
                throw new IllegalArgumentException("segment " + i + " has size " + s + "; sizes must be positive");
            }
            starts[i + 1] = Math.addExact(starts[i], s);
        }
        sizes = List.copyOf(segmentSizes);
    }

    public static RegionLayout single(long size) {
        return new RegionLayout(List.of(size));
    }

    /** Total size in bytes. */
    public long size() {
        return starts[starts.length - 1];
    }

    public int segmentCount() {
        return sizes.size();
    }

    public List<Long> segmentSizes() {
        return sizes;
    }

    public long segmentStart(int segment) {
        return starts[segment];
    }

    /** Index of the segment holding {@code offset}; offset must be in [0, size). */
    public int segmentOf(long offset) {
        if (offset < 0 || offset >= size()) {
            throw new IllegalArgumentException("offset " + offset + " is outside the region [0, " + size() + ")");
        }
        int i = Arrays.binarySearch(starts, offset);
        // An exact hit is the start of segment i; otherwise the insertion point is one past the holding segment.
        return i >= 0 ? i : -i - 2;
    }

    /** Exclusive end of the segment holding {@code offset}. */
    public long segmentEnd(long offset) {
        return starts[segmentOf(offset) + 1];
    }

    /**
     * Checks that [offset, offset + length) lies inside one segment.
     *
     * @throws IllegalArgumentException with a message naming the range and the boundary it breaks
     */
    public void checkRange(long offset, long length) {
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("bad range: offset " + offset + ", length " + length);
        }
        long end;
        try {
            end = Math.addExact(offset, length);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("range at offset " + offset + " with length " + length + " overflows");
        }
        if (end > size()) {
            throw new IllegalArgumentException(
                    "range [" + offset + ", " + end + ") falls outside the region [0, " + size() + ")");
        }
        long segEnd = segmentEnd(offset);
        if (end > segEnd) {
            throw new IllegalArgumentException("range [" + offset + ", " + end + ") crosses the end of chunk "
                    + segmentOf(offset) + " at " + segEnd);
        }
    }

    @Override
    public String toString() {
        return "RegionLayout[size=" + size() + ", segments=" + sizes.size() + "]";
    }
}
