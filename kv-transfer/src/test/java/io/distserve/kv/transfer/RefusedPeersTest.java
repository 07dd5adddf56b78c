package io.distserve.kv.transfer;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The drain before hanging up on a refused peer: bounded by its peer's end, its time limit and its byte limit. */
class RefusedPeersTest {

    /** A connected pair on loopback: [0] the serving side, [1] the peer. */
    private static Socket[] pair() throws Exception {
        try (ServerSocket listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Socket peer = new Socket(InetAddress.getLoopbackAddress(), listener.getLocalPort());
            return new Socket[] {listener.accept(), peer};
        }
    }

    @Test
    void endsWhenThePeerHangsUpAndThePeerSeesOurHalfCloseFirst() throws Exception {
        Socket[] s = pair();
        try (Socket served = s[0]; Socket peer = s[1]) {
            OutputStream toServer = peer.getOutputStream();
            toServer.write(new byte[10_000]);
            peer.shutdownOutput();
            assertThat(RefusedPeers.drain(served, served.getInputStream(), Duration.ofSeconds(5))).isTrue();
            assertThat(peer.getInputStream().read()).isEqualTo(-1);
        }
    }

    @Test
    void aSilentPeerIsWaitedForAtMostTheLimit() throws Exception {
        Socket[] s = pair();
        try (Socket served = s[0]; Socket peer = s[1]) {
            long t0 = System.nanoTime();
            assertThat(RefusedPeers.drain(served, served.getInputStream(), Duration.ofMillis(200))).isFalse();
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(Duration.ofMillis(150));
            InputStream fromServer = peer.getInputStream();
            assertThat(fromServer.read()).isEqualTo(-1);
        }
    }

    @Test
    void aPeerThatNeverStopsSendingIsCutOffAfterTheByteLimit() throws Exception {
        Socket[] s = pair();
        try (Socket served = s[0]; Socket peer = s[1]) {
            // the peer sends more than the limit and never hangs up: the drain stops at the limit, not at the time one
            Thread writer = new Thread(() -> {
                try {
                    peer.getOutputStream().write(new byte[(int) RefusedPeers.MAX_DRAIN_BYTES + 4096]);
                } catch (IOException e) {
                    // a reset once the serving side closes with bytes unread: expected, and not what is tested
                }
            });
            writer.start();
            long t0 = System.nanoTime();
            assertThat(RefusedPeers.drain(served, served.getInputStream(), Duration.ofSeconds(30))).isFalse();
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(10));
            served.close();
            writer.join();
        }
    }

    @Test
    void aSocketClosedUnderTheDrainEndsItQuietly() throws Exception {
        Socket[] s = pair();
        try (Socket served = s[0]; Socket peer = s[1]) {
            Thread closer = new Thread(() -> {
                try {
                    Thread.sleep(100);
                    served.close();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            closer.start();
            assertThat(RefusedPeers.drain(served, served.getInputStream(), Duration.ofSeconds(30))).isFalse();
            closer.join();
        }
    }
}
