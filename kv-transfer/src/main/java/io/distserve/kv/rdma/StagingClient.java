package io.distserve.kv.rdma;

import io.distserve.kv.transfer.TransferException;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A decode engine's staging channel to one prefill engine ({@link StagingProtocol}): sends STAGE requests from the
 * caller's thread and reads the answers on a thread of its own ({@code kv-rdma-ctl-<host:port>}), which checks that
 * each answers the request it expects and hands it to the {@link Listener}.
 */
final class StagingClient implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(StagingClient.class);

    /** Where the answers go; called on the reader thread. */
    interface Listener {
        void staged(long requestId);

        void refused(long requestId, String why);

        /** The channel broke (EOF, reset, an answer out of order): nothing more comes. */
        void broken(String why);
    }

    private final Socket socket;
    private final DataInputStream in;
    private final DataOutputStream out;
    private final StagingProtocol.Welcome welcome;
    private final ConcurrentLinkedQueue<StagingProtocol.Stage> expected = new ConcurrentLinkedQueue<>();
    private final String peer;
    private final Listener listener;
    private final Thread reader;
    private volatile boolean closed;

    private StagingClient(Socket socket, DataInputStream in, DataOutputStream out, StagingProtocol.Welcome welcome,
                          String peer, Listener listener) {
        this.socket = socket;
        this.in = in;
        this.out = out;
        this.welcome = welcome;
        this.peer = peer;
        this.listener = listener;
        this.reader = new Thread(this::readLoop, "kv-rdma-ctl-" + peer);
        this.reader.setDaemon(true);
    }

    /** Connects, presents the token and reads the session's slots, all within {@code timeout}. */
    static StagingClient open(String host, int port, String token, Duration timeout, Listener listener)
            throws TransferException {
        String peer = host + ":" + port;
        int ms = (int) Math.max(1, Math.min(Integer.MAX_VALUE, timeout.toMillis()));
        Socket s = new Socket();
        try {
            s.connect(new InetSocketAddress(host, port), ms);
            s.setTcpNoDelay(true);
            s.setSoTimeout(ms);
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
            StagingProtocol.writeHello(out, token);
            StagingProtocol.Welcome welcome = StagingProtocol.readWelcome(in);
            s.setSoTimeout(0);
            StagingClient c = new StagingClient(s, in, out, welcome, peer, listener);
            c.reader.start();
            return c;
        } catch (IOException e) {
            closeQuietly(s);
            throw new TransferException("rdma: the staging channel to " + peer + " failed: " + e.getMessage(), e);
        }
    }

    /** This session's slots (address, rkey) and their size. */
    StagingProtocol.Welcome welcome() {
        return welcome;
    }

    /** Asks for one run to be staged; the answer comes to the listener. */
    void stage(StagingProtocol.Stage request) throws TransferException {
        expected.add(request);
        try {
            synchronized (out) {
                StagingProtocol.writeStage(out, request);
                out.flush();
            }
        } catch (IOException e) {
            throw new TransferException("rdma: sending a request on the staging channel to " + peer + " failed: " + e, e);
        }
    }

    private void readLoop() {
        try {
            while (!closed) {
                StagingProtocol.Answer a = StagingProtocol.readAnswer(in);
                StagingProtocol.Stage want = expected.poll();
                if (want == null || want.requestId() != a.requestId()
                        || (a.error() == null && a.length() != want.length())) {
                    listener.broken("the staging channel to " + peer + " answered request " + a.requestId()
                            + (a.error() == null ? " (" + a.length() + " bytes)" : ": " + a.error()) + " where "
                            + (want == null ? "nothing" : "request " + want.requestId() + " (" + want.length()
                            + " bytes)") + " was due");
                    return;
                }
                if (a.error() == null) {
                    listener.staged(a.requestId());
                } else {
                    listener.refused(a.requestId(), a.error());
                }
            }
        } catch (IOException e) {
            if (!closed) {
                listener.broken("the staging channel to " + peer + " broke: " + e);
            }
        }
    }

    /** Closes the socket and joins the reader; the listener hears nothing after this returns. */
    @Override
    public void close() {
        closed = true;
        closeQuietly(socket);
        if (Thread.currentThread() != reader) {
            try {
                reader.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException e) {
            LOG.debug("closing a staging channel: {}", e.toString());
        }
    }
}
