package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.RegionLayout;
import io.distserve.kv.transfer.TransferException;
import java.util.ArrayList;
import java.util.List;

/**
 * An engine's KV pool registered with the NIC, so peers can READ it and READs can land in it: host memory segment by
 * segment, device memory by its device address (GPUDirect). One ibv_reg_mr covers at most {@code maxMrBytes}
 * (DiSNI passes a length as a Java int, and a CUDA pool is one allocation of tens of GiB), so each segment is
 * registered in pieces: the {@link #layout()} of those pieces is what READs are planned against (none crosses a
 * piece end), and peers derive it from the segment sizes and {@code maxMrBytes} published in the endpoint.
 */
final class PoolRegistration implements AutoCloseable {

    /** 1 GiB: under DiSNI's int length, and a NIC's max_msg_sz (ConnectX: 1 GiB) splits READs there anyway. */
    static final long DEFAULT_MAX_MR_BYTES = 1L << 30;

    private final List<RdmaVerbs.Registered> registered;
    private final RegionLayout layout;
    private final long maxMrBytes;
    private final boolean gpuDirect;

    private PoolRegistration(List<RdmaVerbs.Registered> registered, RegionLayout layout, long maxMrBytes,
                             boolean gpuDirect) {
        this.registered = List.copyOf(registered);
        this.layout = layout;
        this.maxMrBytes = maxMrBytes;
        this.gpuDirect = gpuDirect;
    }

    /** Each segment of {@code layout} cut into pieces of at most {@code maxMrBytes}: one memory region each. */
    static RegionLayout pieces(RegionLayout layout, long maxMrBytes) {
        checkMaxMr(maxMrBytes);
        List<Long> sizes = new ArrayList<>();
        for (long size : layout.segmentSizes()) {
            for (long done = 0; done < size; done += maxMrBytes) {
                sizes.add(Math.min(maxMrBytes, size - done));
            }
        }
        return new RegionLayout(sizes);
    }

    /** How many pieces {@link #pieces} makes, without making them (a hostile endpoint could ask for billions). */
    static long pieceCount(RegionLayout layout, long maxMrBytes) {
        checkMaxMr(maxMrBytes);
        long n = 0;
        for (long size : layout.segmentSizes()) {
            n += (size + maxMrBytes - 1) / maxMrBytes;
        }
        return n;
    }

    private static void checkMaxMr(long maxMrBytes) {
        if (maxMrBytes < 1 || maxMrBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("the largest memory region must be in [1, 2^31) bytes: " + maxMrBytes);
        }
    }

    /** A host pool: its direct buffers. */
    static PoolRegistration host(RdmaVerbs verbs, MemoryRegion region, long maxMrBytes) throws TransferException {
        RegionLayout pieces = pieces(region.layout(), maxMrBytes);
        List<RdmaVerbs.Registered> out = new ArrayList<>();
        try {
            for (int i = 0; i < pieces.segmentCount(); i++) {
                out.add(verbs.registerHost(region.slice(pieces.segmentStart(i),
                        Math.toIntExact(pieces.segmentSizes().get(i)))));
            }
        } catch (TransferException | RuntimeException e) {
            out.forEach(RdmaVerbs.Registered::close);
            throw e;
        }
        return new PoolRegistration(out, pieces, maxMrBytes, false);
    }

    /** A GPU pool through GPUDirect: the device pointer itself, so the NIC reads and writes GPU memory. */
    static PoolRegistration gpuDirect(RdmaVerbs verbs, DeviceRegion region, long maxMrBytes)
            throws TransferException {
        RegionLayout pieces = pieces(region.layout(), maxMrBytes);
        List<RdmaVerbs.Registered> out = new ArrayList<>();
        try {
            long base = region.device().gpuDirectAddress(region.memory());
            for (int i = 0; i < pieces.segmentCount(); i++) {
                out.add(verbs.registerDevice(base + pieces.segmentStart(i),
                        Math.toIntExact(pieces.segmentSizes().get(i))));
            }
        } catch (TransferException | RuntimeException e) {
            out.forEach(RdmaVerbs.Registered::close);
            throw e;
        }
        return new PoolRegistration(out, pieces, maxMrBytes, true);
    }

    /** One segment (address, keys) per piece of {@link #layout()}, in order. */
    List<RdmaVerbs.Segment> segments() {
        return registered.stream().map(RdmaVerbs.Registered::segment).toList();
    }

    RegionLayout layout() {
        return layout;
    }

    long maxMrBytes() {
        return maxMrBytes;
    }

    boolean gpuDirect() {
        return gpuDirect;
    }

    @Override
    public void close() {
        registered.forEach(RdmaVerbs.Registered::close);
    }
}
