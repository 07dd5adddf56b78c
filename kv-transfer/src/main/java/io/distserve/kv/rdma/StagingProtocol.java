package io.distserve.kv.rdma;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ProtocolException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The staging control channel (tcp, big-endian), by which a decode engine asks a prefill engine whose GPU pool the
 * NIC cannot read to copy runs of it into pinned host slots that it then READs:
 * <pre>
 * HELLO    int magic "KVRS" | short version | short tokenLength | token (UTF-8)                client first
 * WELCOME  int magic | short version | byte status                                            then, status 0:
 *          int slots | int slotBytes | slots x (long address | int rkey)                      the session's slots
 *          status 1 bad token, 2 bad version, 3 not a hello: short msgLength | msg, and close
 * STAGE    int op=1 | long requestId | int slot | long offset | int length                   client, pipelined
 * STAGED   int status=0 | long requestId | int length                                        in request order, once
 *                                                                                             the copy has run
 * ERROR    int status=1 | long requestId | int msgLength | msg (UTF-8)                        a refused request
 * </pre>
 * The client owns the slots: it asks for a slot again only once its READ of the slot has completed, so the serving
 * side never copies into memory the NIC is reading, and no release message is needed.
 */
final class StagingProtocol {

    static final int MAGIC = 0x4B565253; // "KVRS"
    static final short VERSION = 1;
    static final byte OK = 0;
    static final byte BAD_TOKEN = 1;
    static final byte BAD_VERSION = 2;
    static final byte BAD_HELLO = 3;
    static final int OP_STAGE = 1;
    static final int STATUS_STAGED = 0;
    static final int STATUS_ERROR = 1;
    static final int MAX_SLOTS = 64;
    static final int MIN_SLOT_BYTES = 4096;
    static final int MAX_SLOT_BYTES = 256 << 20;
    static final int MAX_MESSAGE = 64 * 1024;
    static final int MAX_TOKEN_BYTES = 4 * RdmaEndpoint.MAX_TOKEN_CHARS;

    /** The session a WELCOME opens: the slots a STAGE names, by index. */
    record Welcome(List<RdmaVerbs.Segment> slots, int slotBytes) {
        Welcome {
            slots = List.copyOf(slots);
        }
    }

    /** Copy region bytes [offset, offset + length) into slot {@code slot}. */
    record Stage(long requestId, int slot, long offset, int length) {
    }

    /** The answer to a STAGE: staged ({@code error} null) or refused. */
    record Answer(long requestId, int length, String error) {
    }

    private StagingProtocol() {
    }

    static void writeHello(DataOutputStream out, String token) throws IOException {
        byte[] t = token.getBytes(StandardCharsets.UTF_8);
        out.writeInt(MAGIC);
        out.writeShort(VERSION);
        out.writeShort(t.length);
        out.write(t);
        out.flush();
    }

    /** The token a HELLO presents; a WELCOME status other than OK when it is not a well-formed hello. */
    static byte[] readHello(DataInputStream in) throws IOException, Refusal {
        if (in.readInt() != MAGIC) {
            throw new Refusal(BAD_HELLO, "not a staging hello");
        }
        if (in.readShort() != VERSION) {
            throw new Refusal(BAD_VERSION, "staging protocol version " + VERSION + " only");
        }
        int n = in.readUnsignedShort();
        if (n > MAX_TOKEN_BYTES) {
            throw new Refusal(BAD_HELLO, "token too long");
        }
        return in.readNBytes(n);
    }

    /** A hello refused with a WELCOME status. */
    static final class Refusal extends Exception {
        final byte status;

        Refusal(byte status, String message) {
            super(message);
            this.status = status;
        }
    }

    static void writeWelcome(DataOutputStream out, Welcome w) throws IOException {
        out.writeInt(MAGIC);
        out.writeShort(VERSION);
        out.writeByte(OK);
        out.writeInt(w.slots().size());
        out.writeInt(w.slotBytes());
        for (RdmaVerbs.Segment s : w.slots()) {
            out.writeLong(s.address());
            out.writeInt(s.rkey());
        }
        out.flush();
    }

    static void writeRefusal(DataOutputStream out, Refusal r) throws IOException {
        byte[] msg = truncate(r.getMessage(), 1024);
        out.writeInt(MAGIC);
        out.writeShort(VERSION);
        out.writeByte(r.status);
        out.writeShort(msg.length);
        out.write(msg);
        out.flush();
    }

    /** The client's side of the handshake's answer, every field checked: a broken or hostile server is refused. */
    static Welcome readWelcome(DataInputStream in) throws IOException {
        if (in.readInt() != MAGIC || in.readShort() != VERSION) {
            throw new ProtocolException("not a staging welcome");
        }
        byte status = in.readByte();
        if (status != OK) {
            int n = in.readUnsignedShort();
            String msg = new String(in.readNBytes(Math.min(n, 1024)), StandardCharsets.UTF_8);
            throw new ProtocolException("the staging channel refused this engine (status " + status + "): " + msg);
        }
        int slots = in.readInt();
        int slotBytes = in.readInt();
        if (slots < 1 || slots > MAX_SLOTS) {
            throw new ProtocolException("a staging welcome offers " + slots + " slots; 1 to " + MAX_SLOTS + " expected");
        }
        if (slotBytes < MIN_SLOT_BYTES || slotBytes > MAX_SLOT_BYTES) {
            throw new ProtocolException("a staging welcome offers slots of " + slotBytes + " bytes; " + MIN_SLOT_BYTES
                    + " to " + MAX_SLOT_BYTES + " expected");
        }
        List<RdmaVerbs.Segment> segs = new ArrayList<>();
        for (int i = 0; i < slots; i++) {
            long address = in.readLong();
            int rkey = in.readInt();
            if (Long.compareUnsigned(address, -(long) slotBytes) > 0) {
                throw new ProtocolException("staging slot " + i + "'s address + its size overflows 64 bits");
            }
            segs.add(new RdmaVerbs.Segment(address, 0, rkey));
        }
        return new Welcome(segs, slotBytes);
    }

    static void writeStage(DataOutputStream out, Stage s) throws IOException {
        out.writeInt(OP_STAGE);
        out.writeLong(s.requestId());
        out.writeInt(s.slot());
        out.writeLong(s.offset());
        out.writeInt(s.length());
    }

    /**
     * The next request; its fields are the server's to check (they index its slots and its pool).
     *
     * @throws ProtocolException for an unknown op: the stream cannot be followed any further
     */
    static Stage readStage(DataInputStream in) throws IOException {
        int op = in.readInt();
        if (op != OP_STAGE) {
            throw new ProtocolException("unknown staging op " + op);
        }
        return new Stage(in.readLong(), in.readInt(), in.readLong(), in.readInt());
    }

    static void writeStaged(DataOutputStream out, long requestId, int length) throws IOException {
        out.writeInt(STATUS_STAGED);
        out.writeLong(requestId);
        out.writeInt(length);
    }

    static void writeError(DataOutputStream out, long requestId, String message) throws IOException {
        byte[] msg = truncate(message, MAX_MESSAGE);
        out.writeInt(STATUS_ERROR);
        out.writeLong(requestId);
        out.writeInt(msg.length);
        out.write(msg);
    }

    static Answer readAnswer(DataInputStream in) throws IOException {
        int status = in.readInt();
        long id = in.readLong();
        int length = in.readInt();
        if (status == STATUS_STAGED) {
            return new Answer(id, length, null);
        }
        if (status != STATUS_ERROR || length < 0 || length > MAX_MESSAGE) {
            throw new ProtocolException("a staging answer with status " + status + " and length " + length);
        }
        return new Answer(id, 0, new String(in.readNBytes(length), StandardCharsets.UTF_8));
    }

    private static byte[] truncate(String s, int max) {
        byte[] b = String.valueOf(s).getBytes(StandardCharsets.UTF_8);
        return b.length <= max ? b : java.util.Arrays.copyOf(b, max);
    }
}
