package io.distserve.kv.tcp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.RemoteTransferException;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.kv.transfer.TransferTimeoutException;
import io.distserve.kv.transfer.TransportOptions;
import java.io.DataInputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Dead peers, hostile peers, timeouts, and no thread left behind. */
class TcpFaultTest {

    private static final Duration T = Duration.ofSeconds(10);
    private static final int BLOCK = 64 << 10;
    private final List<AutoCloseable> open = new ArrayList<>();

    private TcpTransport transport(MemoryRegion region, TransportOptions options) throws Exception {
        TcpTransport t = new TcpTransport(options);
        open.add(t);
        t.register(region);
        t.start();
        return t;
    }

    @AfterEach
    void closeAllAndCheckForLeaks() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
        assertThat(ThreadLeaks.live()).as("kv-tcp threads left after close").isEmpty();
    }

    /** {@code n} blocks read in reverse order, so nothing coalesces: n transfers. */
    private static List<ReadOp> blocks(int n) {
        List<ReadOp> ops = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ops.add(new ReadOp((long) (n - 1 - i) * BLOCK, (long) i * BLOCK, BLOCK));
        }
        return ops;
    }

    @Test
    void peerDyingMidBatchFailsItPromptlyAndLeaksNothing() throws Exception {
        MemoryRegion served = TestRegions.random(1, 256 * BLOCK);
        // 10 ms per transfer on the serving side: 256 transfers take ~1.3 s on 2 streams, so it is surely in flight.
        TcpTransport prefill = transport(TestRegions.slow(served, 10), TransportOptions.defaults());
        TcpTransport decode = transport(TestRegions.zeros(256 * BLOCK), TransportOptions.defaults());
        Connection c = decode.connect(prefill.localEndpoint(), T);
        TransferFuture f = c.read(blocks(256));
        Thread.sleep(100);
        long killed = System.nanoTime();
        prefill.close();
        assertThatThrownBy(() -> f.await(T))
                .isInstanceOf(TransferException.class)
                .hasMessageContaining("read batch from " + prefill.localEndpoint().address() + " failed")
                .hasMessageMatching("(?s).*\\d+ of 256 transfers \\([0-9.]+ MiB of 16.0 MiB\\) were outstanding.*");
        assertThat(Duration.ofNanos(System.nanoTime() - killed)).isLessThan(Duration.ofSeconds(2));
        // The dead peer stays dead: the next read fails fast (reconnect refused), it doesn't hang.
        assertThatThrownBy(() -> c.read(blocks(1)).await(T)).isInstanceOf(TransferException.class)
                .hasMessageContaining("reconnecting failed");
        c.close();
        decode.close();
        assertThat(ThreadLeaks.live()).isEmpty();
    }

    @Test
    void aBrokenConnectionFailsItsBatchAndIsReestablished() throws Exception {
        MemoryRegion served = TestRegions.random(2, 64 * BLOCK);
        TcpTransport prefill = transport(TestRegions.slow(served, 5), TransportOptions.defaults());
        MemoryRegion local = TestRegions.zeros(64 * BLOCK);
        TcpTransport decode = transport(local, TransportOptions.defaults());
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            TransferFuture f = c.read(blocks(64));
            Thread.sleep(50);
            prefill.dropServedSessions(); // the peer drops our sockets but is still there
            assertThatThrownBy(() -> f.await(T)).isInstanceOf(TransferException.class)
                    .hasMessageContaining("outstanding");
            List<ReadOp> ops = blocks(8);
            c.read(ops).await(T); // re-dials
            for (ReadOp op : ops) {
                assertThat(TestRegions.bytes(local, op.localOffset(), BLOCK))
                        .isEqualTo(TestRegions.bytes(served, op.remoteOffset(), BLOCK));
            }
        }
    }

    @Test
    void awaitTimeoutAbortsTheBatchAndTheConnectionRecovers() throws Exception {
        MemoryRegion served = TestRegions.random(3, 64 * BLOCK);
        TcpTransport prefill = transport(TestRegions.slow(served, 20), TransportOptions.defaults());
        TcpTransport decode = transport(TestRegions.zeros(64 * BLOCK), TransportOptions.defaults());
        try (Connection c = decode.connect(prefill.localEndpoint(), T)) {
            TransferFuture f = c.read(blocks(64));
            assertThatThrownBy(() -> f.await(Duration.ofMillis(100))).isInstanceOf(TransferTimeoutException.class)
                    .hasMessageContaining("no completion within PT0.1S");
            assertThat(f.isDone()).isTrue(); // nothing of it can land any more
            assertThat(c.read(blocks(2)).await(T).bytes()).isEqualTo(2L * BLOCK);
        }
    }

    @Test
    void wrongTokenIsRejected() throws Exception {
        TcpTransport prefill = transport(TestRegions.random(4, 4 * BLOCK), TransportOptions.defaults());
        TcpTransport decode = transport(TestRegions.zeros(4 * BLOCK), TransportOptions.defaults());
        EndpointInfo real = prefill.localEndpoint();
        EndpointInfo forged = new EndpointInfo(real.transport(), real.host(), real.port(), real.regionSize(),
                real.segmentSizes(), "0".repeat(64), real.attributes());
        assertThatThrownBy(() -> decode.connect(forged, T)).isInstanceOf(RemoteTransferException.class)
                .hasMessageContaining("refused the connection: bad token");
        assertThat(decode.openConnections()).isEmpty();
        // A stale endpoint (right token, wrong size) is refused by the client.
        EndpointInfo stale = new EndpointInfo(real.transport(), real.host(), real.port(), real.regionSize() * 2,
                null, real.token(), null);
        assertThatThrownBy(() -> decode.connect(stale, T)).hasMessageContaining("stale endpoint info");
    }

    @Test
    void serverRefusesRangesOutsideItsChunksWithAnErrorFrame() throws Exception {
        // The client believes the remote region is one segment, so its planner lets a chunk-crossing read through;
        // the server must refuse it itself.
        MemoryRegion served = TestRegions.random(5, 2 * BLOCK, 2 * BLOCK);
        TcpTransport prefill = transport(served, TransportOptions.defaults());
        MemoryRegion local = TestRegions.zeros(8 * BLOCK);
        TcpTransport decode = transport(local, TransportOptions.defaults());
        EndpointInfo real = prefill.localEndpoint();
        EndpointInfo lying = new EndpointInfo("tcp", real.host(), real.port(), real.regionSize(), null, real.token(),
                null);
        try (Connection c = decode.connect(lying, T)) {
            List<ReadOp> ops = List.of(new ReadOp(0, 0, BLOCK), new ReadOp(BLOCK, 2 * BLOCK, 2 * BLOCK),
                    new ReadOp(3 * BLOCK, 6 * BLOCK, BLOCK));
            assertThatThrownBy(() -> c.read(ops).await(T)).isInstanceOf(RemoteTransferException.class)
                    .hasMessageContaining("crosses the end of chunk 0");
            // The stream stays in sync: a good read on the same connection still works.
            c.read(List.of(new ReadOp(3 * BLOCK, 7 * BLOCK, BLOCK))).await(T);
            assertThat(TestRegions.bytes(local, 7 * BLOCK, BLOCK)).isEqualTo(TestRegions.bytes(served, 3 * BLOCK,
                    BLOCK));
        }
    }

    @Test
    void hostileRawRequestsGetErrorFramesNeverBytesOutsideTheRegion() throws Exception {
        MemoryRegion served = TestRegions.random(6, 4096, 4096);
        TcpTransport prefill = transport(served, TransportOptions.defaults());
        EndpointInfo e = prefill.localEndpoint();
        try (SocketChannel ch = SocketChannel.open(new InetSocketAddress(e.host(), e.port()))) {
            WireProtocol.writeFully(ch, WireProtocol.hello(e.token().getBytes(StandardCharsets.UTF_8)));
            DataInputStream in = new DataInputStream(ch.socket().getInputStream());
            assertThat(in.readInt()).isEqualTo(WireProtocol.MAGIC);
            in.readShort();
            assertThat(in.readByte()).isEqualTo(WireProtocol.WELCOME_OK);
            assertThat(in.readLong()).isEqualTo(8192);
            in.readFully(new byte[in.readUnsignedShort()]);

            long[][] bad = {{8192, 16}, {8190, 16}, {-4096, 16}, {Long.MAX_VALUE - 4, 16}, {4000, 200}, {0, 0},
                    {0, -1}, {0, Integer.MAX_VALUE}};
            for (int i = 0; i < bad.length; i++) {
                request(ch, WireProtocol.OP_READ, i, bad[i][0], (int) bad[i][1]);
                assertThat(in.readInt()).as("status for %d", i).isEqualTo(WireProtocol.STATUS_ERROR);
                assertThat(in.readLong()).isEqualTo(i);
                byte[] msg = new byte[in.readInt()];
                in.readFully(msg);
                assertThat(new String(msg, StandardCharsets.UTF_8)).contains("refused");
            }
            request(ch, WireProtocol.OP_READ, 99, 4096, 4096); // still in sync: a good one works
            assertThat(in.readInt()).isEqualTo(WireProtocol.STATUS_DATA);
            assertThat(in.readLong()).isEqualTo(99);
            byte[] data = new byte[in.readInt()];
            in.readFully(data);
            assertThat(data).isEqualTo(TestRegions.bytes(served, 4096, 4096));

            request(ch, 77, 100, 0, 16); // unknown op: error frame, then the server hangs up
            assertThat(in.readInt()).isEqualTo(WireProtocol.STATUS_ERROR);
            assertThat(in.readLong()).isEqualTo(100);
            in.readFully(new byte[in.readInt()]);
            assertThat(in.read()).isEqualTo(-1);
        }
    }

    private static void request(SocketChannel ch, int op, long id, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(WireProtocol.REQUEST_BYTES);
        b.putInt(op).putLong(id).putLong(offset).putInt(length).flip();
        WireProtocol.writeFully(ch, b);
    }

    @Test
    void silentOrGarbagePeersAreDroppedAfterTheHandshakeTimeout() throws Exception {
        TcpTransport prefill = transport(TestRegions.zeros(4096),
                TransportOptions.defaults().withHandshakeTimeout(Duration.ofMillis(200)));
        EndpointInfo e = prefill.localEndpoint();
        try (SocketChannel silent = SocketChannel.open(new InetSocketAddress(e.host(), e.port()));
             SocketChannel garbage = SocketChannel.open(new InetSocketAddress(e.host(), e.port()))) {
            // an HTTP request and then some: the server refuses after the first 8 bytes with all the rest unread
            ByteBuffer http = ByteBuffer.allocate(18 + 8192);
            http.put("GET / HTTP/1.1\r\n\r\n".getBytes(StandardCharsets.UTF_8)).position(http.capacity()).flip();
            WireProtocol.writeFully(garbage, http);
            long t0 = System.nanoTime();
            assertThat(silent.read(ByteBuffer.allocate(64))).isEqualTo(-1);
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(3));
            // The server answers BAD_HELLO and drains the unread bytes before it hangs up, so the garbage peer reads
            // the answer and an orderly end, not a reset.
            ByteBuffer answer = ByteBuffer.allocate(256);
            while (answer.hasRemaining() && garbage.read(answer) >= 0) {
                // until the server's half-close
            }
            answer.flip();
            assertThat(answer.getInt()).isEqualTo(WireProtocol.MAGIC);
            assertThat(answer.getShort()).isEqualTo(WireProtocol.VERSION);
            assertThat(answer.get()).isEqualTo(WireProtocol.WELCOME_BAD_HELLO);
        }
        // the garbage peer's session ends when it sees our close (or after the handshake timeout)
        await().atMost(Duration.ofSeconds(5)).until(() -> prefill.servedSessionCount() == 0);
    }

    @Test
    void connectTimesOutOnAPeerThatNeverAnswersAndFailsFastOnAClosedPort() throws Exception {
        TcpTransport decode = transport(TestRegions.zeros(4096), TransportOptions.defaults());
        try (ServerSocketChannel mute = ServerSocketChannel.open()) {
            mute.bind(new InetSocketAddress("127.0.0.1", 0)); // the kernel accepts, nobody ever answers
            int port = ((InetSocketAddress) mute.getLocalAddress()).getPort();
            EndpointInfo e = new EndpointInfo("tcp", "127.0.0.1", port, 4096, null, "x", null);
            long t0 = System.nanoTime();
            assertThatThrownBy(() -> decode.connect(e, Duration.ofMillis(300)))
                    .isInstanceOf(TransferTimeoutException.class).hasMessageContaining("tcp://127.0.0.1:" + port);
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(3));
        }
        int closedPort;
        try (ServerSocketChannel tmp = ServerSocketChannel.open()) {
            tmp.bind(new InetSocketAddress("127.0.0.1", 0));
            closedPort = ((InetSocketAddress) tmp.getLocalAddress()).getPort();
        }
        EndpointInfo gone = new EndpointInfo("tcp", "127.0.0.1", closedPort, 4096, null, "x", null);
        assertThatThrownBy(() -> decode.connect(gone, T)).isInstanceOf(TransferException.class)
                .hasMessageContaining("cannot connect to tcp://127.0.0.1:" + closedPort);
        assertThat(ThreadLeaks.live()).allMatch(n -> !n.startsWith("kv-tcp-read-"));
    }

    @Test
    void closingTheTransportFailsBatchesInFlightAndJoinsEverything() throws Exception {
        MemoryRegion served = TestRegions.random(7, 64 * BLOCK);
        TcpTransport prefill = transport(TestRegions.slow(served, 10), TransportOptions.defaults().withStreams(4));
        TcpTransport decode = transport(TestRegions.zeros(64 * BLOCK), TransportOptions.defaults().withStreams(4));
        Connection c = decode.connect(prefill.localEndpoint(), T);
        assertThat(ThreadLeaks.live()).filteredOn(n -> n.startsWith("kv-tcp-read-")).hasSize(4);
        TransferFuture f = c.read(blocks(64));
        Thread.sleep(30);
        decode.close(); // the pulling side goes away
        assertThatThrownBy(() -> f.await(T)).isInstanceOf(TransferException.class)
                .hasMessageContaining("closed");
        assertThatThrownBy(() -> c.read(blocks(1))).isInstanceOf(IllegalStateException.class);
        assertThat(ThreadLeaks.live()).filteredOn(n -> n.startsWith("kv-tcp-read-")).isEmpty();
    }
}
