package io.distserve.kv.rdma;

import io.distserve.kv.device.DeviceException;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuEvent;
import io.distserve.kv.transfer.RefusedPeers;
import io.distserve.kv.transfer.Tokens;
import io.distserve.kv.transfer.TransferException;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ProtocolException;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayDeque;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One peer's staging channel on the serving side: after the handshake, a ring of registered pinned slots of its own
 * (freed when the channel ends), and a loop that copies each requested run device-to-host into the slot named and
 * answers once the copy has run. Requests already received are all enqueued on the GPU before the first is waited
 * for, so the copy engine works on the next slots while the peer READs the first.
 */
final class StagingSession implements Runnable {

    private static final Logger LOG = LoggerFactory.getLogger(StagingSession.class);
    private static final int STAGE_BYTES = 4 + 8 + 4 + 8 + 4;

    /** A request answered in order: its copy's event, or why it was refused. */
    private record Pending(long requestId, int length, GpuEvent copied, String refused) {
    }

    private final Socket socket;
    private final DeviceRegion region;
    private final RdmaVerbs verbs;
    private final byte[] token;
    private final int slots;
    private final int slotBytes;
    private final Duration handshakeTimeout;

    StagingSession(Socket socket, DeviceRegion region, RdmaVerbs verbs, byte[] token, int slots, int slotBytes,
                   Duration handshakeTimeout) {
        this.socket = socket;
        this.region = region;
        this.verbs = verbs;
        this.token = token;
        this.slots = slots;
        this.slotBytes = slotBytes;
        this.handshakeTimeout = handshakeTimeout;
    }

    /** Ends the session: its thread leaves the loop and frees the slots. */
    void close() {
        try {
            socket.close();
        } catch (IOException e) {
            LOG.debug("closing a staging session: {}", e.toString());
        }
    }

    @Override
    public void run() {
        String peer = String.valueOf(socket.getRemoteSocketAddress());
        try (socket) {
            socket.setTcpNoDelay(true);
            socket.setSoTimeout((int) Math.max(1, handshakeTimeout.toMillis()));
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream()));
            try {
                if (!Tokens.matches(token, StagingProtocol.readHello(in))) {
                    throw new StagingProtocol.Refusal(StagingProtocol.BAD_TOKEN, "bad token");
                }
            } catch (StagingProtocol.Refusal r) {
                LOG.warn("rdma staging: refused {}: {}", peer, r.getMessage());
                StagingProtocol.writeRefusal(out, r);
                drainBeforeClose(in);
                return;
            }
            socket.setSoTimeout(0);
            try (PinnedSlots ring = PinnedSlots.open(region.device(), verbs, slots, slotBytes)) {
                StagingProtocol.writeWelcome(out, new StagingProtocol.Welcome(ring.segments(), slotBytes));
                serve(in, out, ring);
            }
        } catch (TransferException e) {
            LOG.warn("rdma staging: no slots for {}: {}", peer, e.getMessage());
        } catch (IOException e) {
            LOG.debug("rdma staging: session with {} ended: {}", peer, e.toString());
        }
    }

    private void serve(DataInputStream in, DataOutputStream out, PinnedSlots ring) throws IOException {
        ArrayDeque<Pending> pending = new ArrayDeque<>();
        try {
            while (true) {
                pending.add(stage(ring, StagingProtocol.readStage(in)));
                while (in.available() >= STAGE_BYTES) {
                    pending.add(stage(ring, StagingProtocol.readStage(in)));
                }
                answer(pending, out);
            }
        } catch (ProtocolException e) {
            answer(pending, out); // the requests before the garbage are answered, then the channel ends
            StagingProtocol.writeError(out, -1, e.getMessage());
            out.flush();
            drainBeforeClose(in);
        } finally {
            pending.forEach(p -> {
                if (p.copied() != null) {
                    p.copied().close();
                }
            });
        }
    }

    /** After a refusal: the peer reads why before we hang up (RefusedPeers says why that needs a drain). */
    private void drainBeforeClose(DataInputStream in) {
        if (!RefusedPeers.drain(socket, in, handshakeTimeout)) {
            LOG.debug("rdma staging: a refused peer did not hang up within {}; closing", handshakeTimeout);
        }
    }

    /** Checks a request against the slots and the pool and enqueues its copy, or says why not. */
    private Pending stage(PinnedSlots ring, StagingProtocol.Stage s) {
        String bad = null;
        if (s.slot() < 0 || s.slot() >= ring.count()) {
            bad = "slot " + s.slot() + " is not one of this session's " + ring.count();
        } else if (s.length() < 1 || s.length() > ring.bytes()) {
            bad = "length " + s.length() + " is not in [1, " + ring.bytes() + "]";
        } else if (s.offset() < 0 || s.offset() > region.size() - s.length()) {
            bad = "[" + s.offset() + ", +" + s.length() + ") is outside the pool [0, " + region.size() + ")";
        }
        if (bad != null) {
            return new Pending(s.requestId(), 0, null, bad);
        }
        ring.stream().copyToHost(region.memory(), s.offset(), ring.buffer(s.slot()), 0, s.length());
        return new Pending(s.requestId(), s.length(), ring.stream().record(), null);
    }

    private static void answer(ArrayDeque<Pending> pending, DataOutputStream out) throws IOException {
        while (!pending.isEmpty()) {
            Pending p = pending.peek();
            if (p.refused() != null) {
                StagingProtocol.writeError(out, p.requestId(), p.refused());
            } else {
                try {
                    p.copied().await();
                    StagingProtocol.writeStaged(out, p.requestId(), p.length());
                } catch (DeviceException e) {
                    StagingProtocol.writeError(out, p.requestId(), "the device-to-host copy failed: "
                            + e.getMessage());
                } finally {
                    p.copied().close();
                }
            }
            pending.poll();
        }
        out.flush();
    }
}
