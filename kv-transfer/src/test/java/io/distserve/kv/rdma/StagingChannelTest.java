package io.distserve.kv.rdma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.HostGpuDevice;
import io.distserve.kv.transfer.Tokens;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ProtocolException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The staging channel's wire protocol against hostile peers: the serving side refuses a bad token or a garbage
 * hello without allocating anything, answers bad requests with errors and stays in sync, and ends the channel on an
 * unknown op; the pulling side refuses a welcome it cannot trust.
 */
class StagingChannelTest {

    private static final String TOKEN = "ab".repeat(32);
    private final FakeFabric fabric = new FakeFabric();
    private HostGpuDevice device;
    private StagingServer server;

    @BeforeEach
    void serve() throws Exception {
        device = HostGpuDevice.standalone(20);
        DeviceRegion pool = device.pool(64 * 1024, 3);
        server = new StagingServer(new StagingServer.Settings(pool, fabric.verbs(0x1000, device),
                Tokens.bytes(TOKEN), 2, 4096, Duration.ofSeconds(2)), "127.0.0.1");
    }

    @AfterEach
    void nothingIsLeft() {
        server.close();
        assertThat(RdmaTestPools.liveThreads()).isEmpty();
        assertThat(device.livePinnedBuffers()).isZero();
        assertThat(device.liveStreams()).isZero();
        assertThat(fabric.liveRegistrations()).isZero();
    }

    private record Peer(Socket socket, DataInputStream in, DataOutputStream out) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    private Peer dial() throws IOException {
        Socket s = new Socket();
        s.connect(new InetSocketAddress("127.0.0.1", server.port()), 2000);
        s.setSoTimeout(5000);
        return new Peer(s, new DataInputStream(s.getInputStream()), new DataOutputStream(s.getOutputStream()));
    }

    @Test
    void aBadTokenOrAGarbageHelloIsRefusedAndNothingIsAllocated() throws Exception {
        try (Peer p = dial()) {
            StagingProtocol.writeHello(p.out(), "cd".repeat(32));
            assertThatThrownBy(() -> StagingProtocol.readWelcome(p.in())).isInstanceOf(ProtocolException.class)
                    .hasMessageContaining("status 1").hasMessageContaining("bad token");
            assertThat(p.in().read()).isEqualTo(-1); // and closed
        }
        try (Peer p = dial()) {
            p.out().writeBytes("GET / HTTP/1.1\r\n\r\n");
            p.out().flush();
            assertThatThrownBy(() -> StagingProtocol.readWelcome(p.in())).hasMessageContaining("status 3");
        }
        assertThat(device.livePinnedBuffers()).isZero();
    }

    @Test
    void aRefusedPeerStillSendingReadsWhyAndAnOrderlyEndNotAReset() throws Exception {
        try (Peer p = dial()) {
            p.out().write("GET / HTTP/1.1\r\n".getBytes(StandardCharsets.US_ASCII));
            p.out().flush();
            assertThatThrownBy(() -> StagingProtocol.readWelcome(p.in())).hasMessageContaining("status 3");
            // The server has answered; a peer that keeps writing (a pipelined client) must not be reset. Without the
            // drain the server's close with unread bytes made these writes fail with "broken pipe".
            byte[] chunk = new byte[1024];
            for (int i = 0; i < 16; i++) {
                p.out().write(chunk);
                p.out().flush();
                Thread.sleep(5);
            }
            assertThat(p.in().read()).isEqualTo(-1);
            p.socket().shutdownOutput();
        }
    }

    @Test
    void badRequestsGetErrorsInOrderAndTheChannelStaysInSyncUntilAnUnknownOp() throws Exception {
        try (Peer p = dial()) {
            StagingProtocol.writeHello(p.out(), TOKEN);
            StagingProtocol.Welcome w = StagingProtocol.readWelcome(p.in());
            assertThat(w.slots()).hasSize(2);
            assertThat(w.slotBytes()).isEqualTo(4096);
            assertThat(device.livePinnedBuffers()).isEqualTo(2);
            StagingProtocol.Stage[] requests = {
                    new StagingProtocol.Stage(1, 2, 0, 100),           // no such slot
                    new StagingProtocol.Stage(2, 0, 0, 4097),          // more than a slot
                    new StagingProtocol.Stage(3, 0, 64 * 1024 - 10, 11), // past the pool's end
                    new StagingProtocol.Stage(4, 1, -1, 10),           // negative offset
                    new StagingProtocol.Stage(5, 1, 1000, 0),          // empty
                    new StagingProtocol.Stage(6, 1, 1000, 4096),       // fine
            };
            for (StagingProtocol.Stage s : requests) {
                StagingProtocol.writeStage(p.out(), s);
            }
            p.out().flush();
            String[] why = {"slot 2", "length 4097", "outside the pool", "outside the pool", "length 0"};
            for (int i = 0; i < why.length; i++) {
                StagingProtocol.Answer a = StagingProtocol.readAnswer(p.in());
                assertThat(a.requestId()).isEqualTo(i + 1);
                assertThat(a.error()).contains(why[i]);
            }
            StagingProtocol.Answer ok = StagingProtocol.readAnswer(p.in());
            assertThat(ok).isEqualTo(new StagingProtocol.Answer(6, 4096, null));
            p.out().writeInt(99); // just the op: nothing is left unread when the server closes (no reset)
            p.out().flush();
            StagingProtocol.Answer bye = StagingProtocol.readAnswer(p.in());
            assertThat(bye.error()).contains("unknown staging op 99");
            assertThatThrownBy(() -> StagingProtocol.readAnswer(p.in())).isInstanceOf(EOFException.class);
        }
    }

    private static DataInputStream welcome(int slots, int slotBytes, long address) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(b);
        out.writeInt(StagingProtocol.MAGIC);
        out.writeShort(StagingProtocol.VERSION);
        out.writeByte(StagingProtocol.OK);
        out.writeInt(slots);
        out.writeInt(slotBytes);
        for (int i = 0; i < Math.min(slots, 4); i++) {
            out.writeLong(address);
            out.writeInt(7);
        }
        return new DataInputStream(new ByteArrayInputStream(b.toByteArray()));
    }

    @Test
    void aWelcomeThePullingSideCannotTrustIsRefused() throws Exception {
        assertThat(StagingProtocol.readWelcome(welcome(2, 4096, 0x1000)).slots()).hasSize(2);
        assertThatThrownBy(() -> StagingProtocol.readWelcome(welcome(0, 4096, 0x1000))).hasMessageContaining("0 slots");
        assertThatThrownBy(() -> StagingProtocol.readWelcome(welcome(65, 4096, 0x1000)))
                .hasMessageContaining("65 slots");
        assertThatThrownBy(() -> StagingProtocol.readWelcome(welcome(2, 100, 0x1000)))
                .hasMessageContaining("100 bytes");
        assertThatThrownBy(() -> StagingProtocol.readWelcome(welcome(2, 4096, -100)))
                .hasMessageContaining("overflows");
        DataInputStream notOurs = new DataInputStream(new ByteArrayInputStream(
                "HTTP/1.1 400 Bad Request\r\n\r\n".getBytes(StandardCharsets.US_ASCII)));
        assertThatThrownBy(() -> StagingProtocol.readWelcome(notOurs)).hasMessageContaining("not a staging welcome");
    }
}
