package io.distserve.kv.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.device.AllocatedMemory;
import io.distserve.kv.device.CopyRuns;
import io.distserve.kv.device.DeviceException;
import io.distserve.kv.device.DeviceRegion;
import io.distserve.kv.device.GpuStream;
import io.distserve.kv.device.IpcExport;
import io.distserve.kv.device.PinnedBuffer;
import io.distserve.kv.tcp.TcpTransport;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransportOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The JCuda device on a real GPU (skipped, with the reason, where there is none: CI). Two processes are needed for
 * CUDA IPC, which kv-transfer's GPU benchmark and scripts/device/distserve_gpu.sh cover; here: copies, the gather
 * kernel against a host reference, tcp staged out of and into device memory, and the refusals.
 */
class JCudaGpuDeviceTest {

    static JCudaGpuDevice device;

    @BeforeEach
    void needsAGpu() {
        String why = CudaAvailability.unavailableReason();
        Assumptions.assumeTrue(why == null, "no GPU here: " + why);
        if (device == null) {
            device = JCudaGpuDevice.open(0);
        }
    }

    @AfterAll
    static void close() {
        if (device != null) {
            device.close();
        }
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static void upload(GpuStream s, AllocatedMemory mem, byte[] bytes) {
        try (PinnedBuffer p = device.allocatePinned(bytes.length)) {
            p.buffer().put(bytes);
            s.copyToDevice(p, 0, mem, 0, bytes.length);
            s.synchronize();
        }
    }

    private static byte[] download(GpuStream s, AllocatedMemory mem, long offset, int n) {
        try (PinnedBuffer p = device.allocatePinned(n)) {
            s.copyToHost(mem, offset, p, 0, n);
            s.synchronize();
            byte[] out = new byte[n];
            p.buffer().get(out);
            return out;
        }
    }

    @Test
    void theGatherKernelCopiesEveryRunExactlyAlignedOrNot() {
        device.bind();
        int size = 8 << 20;
        byte[] src = random(size, 1);
        try (GpuStream s = device.newStream(); AllocatedMemory a = device.allocate(size);
             AllocatedMemory b = device.allocate(size)) {
            upload(s, a, src);
            upload(s, b, new byte[size]);
            List<ReadOp> ops = new ArrayList<>();
            Random rnd = new Random(2);
            long dst = 0;
            for (int i = 0; i < 60; i++) {
                int len = rnd.nextBoolean() ? 16 * (1 + rnd.nextInt(20_000)) : 1 + rnd.nextInt(70_000); // odd ones too
                long from = rnd.nextInt(size - len);
                if (dst + len > size) {
                    break;
                }
                ops.add(new ReadOp(from, dst, len));
                dst += len + rnd.nextInt(3);
            }
            s.gather(a, b, CopyRuns.of(ops));
            s.synchronize();
            byte[] got = download(s, b, 0, size);
            for (ReadOp op : ops) {
                for (int i = 0; i < op.length(); i++) {
                    assertThat(got[(int) (op.localOffset() + i)]).isEqualTo(src[(int) (op.remoteOffset() + i)]);
                }
            }
            assertThatThrownBy(() -> s.gather(a, b, CopyRuns.of(List.of(new ReadOp(size - 8, 0, 16)))))
                    .isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void tcpStagesOutOfAndIntoDeviceMemory() throws Exception {
        device.bind();
        int size = 16 << 20;
        byte[] src = random(size, 3);
        try (GpuStream s = device.newStream(); AllocatedMemory a = device.allocate(size);
             AllocatedMemory b = device.allocate(size);
             TcpTransport serving = new TcpTransport(TransportOptions.defaults());
             TcpTransport pulling = new TcpTransport(TransportOptions.defaults())) {
            upload(s, a, src);
            serving.register(new DeviceRegion(device, a));
            serving.start();
            pulling.register(new DeviceRegion(device, b));
            pulling.start();
            List<ReadOp> ops = new ArrayList<>();
            for (int i = 0; i < 12; i++) {
                ops.add(new ReadOp((11 - i) * (1L << 20) + 7, i * (1L << 20), (1 << 20) - 13));
            }
            try (Connection c = pulling.connect(serving.localEndpoint(), Duration.ofSeconds(10))) {
                c.read(ops).await(Duration.ofSeconds(30));
            }
            for (ReadOp op : ops) {
                assertThat(download(s, b, op.localOffset(), (int) op.length()))
                        .isEqualTo(java.util.Arrays.copyOfRange(src, (int) op.remoteOffset(),
                                (int) (op.remoteOffset() + op.length())));
            }
        }
    }

    @Test
    void ownAndForgedHandlesAreRefusedByTheDriver() {
        device.bind();
        try (AllocatedMemory a = device.allocate(1 << 20)) {
            IpcExport e = device.exportIpc(a);
            assertThat(e.offset()).isZero();
            assertThat(device.pciBusId()).matches("[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]");
            assertThatThrownBy(() -> device.openIpc(e.handle())).isInstanceOf(DeviceException.class);
            byte[] forged = random(IpcExport.HANDLE_BYTES, 9);
            assertThatThrownBy(() -> device.openIpc(forged)).isInstanceOf(DeviceException.class);
        }
    }
}
