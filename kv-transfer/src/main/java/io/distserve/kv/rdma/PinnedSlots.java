package io.distserve.kv.rdma;

import io.distserve.kv.device.GpuDevice;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.PinnedBuffer;
import io.distserve.kv.transfer.TransferException;
import java.util.ArrayList;
import java.util.List;

/**
 * Pinned host buffers registered with the NIC, and a GPU stream of their own: the staging slots a prefill engine
 * copies device-to-host into for a peer to READ, or the landing slots a decode engine READs into and copies
 * host-to-device from. Made on, and driven from, one thread, which it binds to the GPU; closing waits for the
 * stream, then deregisters and frees every buffer, also when opening failed half way.
 */
final class PinnedSlots implements AutoCloseable {

    private final GpuStream stream;
    private final List<PinnedBuffer> buffers;
    private final List<RdmaVerbs.Registered> registered;
    private final int bytes;

    private PinnedSlots(GpuStream stream, List<PinnedBuffer> buffers, List<RdmaVerbs.Registered> registered,
                        int bytes) {
        this.stream = stream;
        this.buffers = buffers;
        this.registered = registered;
        this.bytes = bytes;
    }

    static PinnedSlots open(GpuDevice device, RdmaVerbs verbs, int count, int bytes) throws TransferException {
        device.bind();
        List<PinnedBuffer> buffers = new ArrayList<>();
        List<RdmaVerbs.Registered> registered = new ArrayList<>();
        GpuStream stream = device.newStream();
        PinnedSlots slots = new PinnedSlots(stream, buffers, registered, bytes);
        try {
            for (int i = 0; i < count; i++) {
                PinnedBuffer b = device.allocatePinned(bytes);
                buffers.add(b);
                registered.add(verbs.registerHost(b.buffer()));
            }
        } catch (TransferException | RuntimeException e) {
            slots.close();
            throw e;
        }
        return slots;
    }

    GpuStream stream() {
        return stream;
    }

    int count() {
        return buffers.size();
    }

    int bytes() {
        return bytes;
    }

    PinnedBuffer buffer(int slot) {
        return buffers.get(slot);
    }

    RdmaVerbs.Segment segment(int slot) {
        return registered.get(slot).segment();
    }

    List<RdmaVerbs.Segment> segments() {
        return registered.stream().map(RdmaVerbs.Registered::segment).toList();
    }

    @Override
    public void close() {
        try {
            stream.close(); // waits for the copies in flight: nothing writes a buffer after it is freed
        } finally {
            registered.forEach(RdmaVerbs.Registered::close);
            buffers.forEach(PinnedBuffer::close);
        }
    }
}
