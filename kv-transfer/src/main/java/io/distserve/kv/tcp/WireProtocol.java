package io.distserve.kv.tcp;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * The tcp transport's binary framing. All integers big-endian. Documented for humans in kv-transfer/README.md.
 *
 * <pre>
 * handshake (once per socket, client first):
 *   HELLO   client->server  int magic 'KVX1' | short version | short tokenLength | token bytes (UTF-8)
 *   WELCOME server->client  int magic | short version | byte status | long regionSize | short msgLength | msg bytes
 *           status 0 = OK; anything else = refused, msg says why, then the server closes the socket
 * requests (client->server, fixed 24 bytes, pipelined: the client does not wait between them):
 *   READ    int op=1 | long requestId | long offset | int length
 * responses (server->client, in request order, 16-byte header + payload):
 *   DATA    int status=0 | long requestId | int length | length bytes of the region at offset
 *   ERROR   int status=1 | long requestId | int length | length bytes of UTF-8 message
 * </pre>
 * An ERROR answers one request and keeps the stream in sync (the next response answers the next request); an
 * unknown op gets an ERROR and the server then closes the socket, because it cannot know the frame's length.
 */
final class WireProtocol {

    static final int MAGIC = 0x4B565831; // "KVX1"
    static final short VERSION = 1;

    static final byte WELCOME_OK = 0;
    static final byte WELCOME_BAD_TOKEN = 1;
    static final byte WELCOME_BAD_VERSION = 2;
    static final byte WELCOME_BAD_HELLO = 3;

    static final int OP_READ = 1;
    static final int REQUEST_BYTES = 4 + 8 + 8 + 4;

    static final int STATUS_DATA = 0;
    static final int STATUS_ERROR = 1;
    static final int RESPONSE_HEADER_BYTES = 4 + 8 + 4;

    /** Longest token or message in a handshake frame; a longer length means a garbage peer. */
    static final int MAX_SHORT_STRING = 1024;
    /** Longest error message the client will read. */
    static final int MAX_ERROR_MESSAGE = 64 * 1024;

    private WireProtocol() {
    }

    static ByteBuffer hello(byte[] token) {
        ByteBuffer b = ByteBuffer.allocate(8 + token.length);
        b.putInt(MAGIC).putShort(VERSION).putShort((short) token.length).put(token).flip();
        return b;
    }

    static ByteBuffer welcome(byte status, long regionSize, String message) {
        byte[] msg = truncate(message, MAX_SHORT_STRING);
        ByteBuffer b = ByteBuffer.allocate(4 + 2 + 1 + 8 + 2 + msg.length);
        b.putInt(MAGIC).putShort(VERSION).put(status).putLong(regionSize).putShort((short) msg.length).put(msg).flip();
        return b;
    }

    static byte[] truncate(String s, int max) {
        byte[] bytes = s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        return bytes.length <= max ? bytes : java.util.Arrays.copyOf(bytes, max);
    }

    /** Fills {@code b} completely; false on a clean EOF before the first byte, EOFException on EOF mid-frame. */
    static boolean readFully(ReadableByteChannel ch, ByteBuffer b) throws IOException {
        boolean first = true;
        while (b.hasRemaining()) {
            int n = ch.read(b);
            if (n < 0) {
                if (first && b.position() == 0) {
                    return false;
                }
                throw new EOFException("connection closed mid-frame");
            }
            first = false;
        }
        return true;
    }

    static void writeFully(WritableByteChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }
}
