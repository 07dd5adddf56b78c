package io.distserve.kv.device;

import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A {@link GpuDevice} double over host memory, for tests without a GPU. It behaves the way the real one does where
 * that decides whether transport code is right:
 * <ul>
 *   <li>stream work really is asynchronous (a thread per stream, each operation after a random delay of up to
 *       {@code maxDelayMicros}), so reading a buffer before its copy's event, or reusing one too early, corrupts
 *       data and fails the test;</li>
 *   <li>a call from a thread that did not {@link #bind()} fails, as a call without a current context does;</li>
 *   <li>IPC handles are 64 random bytes resolved through the {@link Host} the devices share; a handle is refused in
 *       the device ("process") that exported it, and an unknown one is refused;</li>
 *   <li>an operation out of bounds fails the stream for good (sticky, as a CUDA fault is), reported by events.</li>
 * </ul>
 * Counters of live pinned buffers, streams and imports let tests check that nothing leaks.
 */
public final class HostGpuDevice implements GpuDevice {

    /** One host's IPC namespace: the devices ("processes") made from it can open each other's handles. */
    public static final class Host {
        private final ConcurrentHashMap<String, Exported> exports = new ConcurrentHashMap<>();
        private final SecureRandom random = new SecureRandom();

        public HostGpuDevice device(String pciBusId, int maxDelayMicros) {
            return new HostGpuDevice(this, pciBusId, maxDelayMicros);
        }
    }

    private record Exported(HostGpuDevice owner, HostMemory memory) {
    }

    /** Device memory of the double: a direct buffer. */
    public static final class HostMemory implements AllocatedMemory, ImportedMemory {
        private final ByteBuffer bytes;
        private final Runnable onClose;
        private volatile boolean closed;

        HostMemory(ByteBuffer bytes, Runnable onClose) {
            this.bytes = bytes;
            this.onClose = onClose;
        }

        @Override
        public long size() {
            return bytes.capacity();
        }

        /** Test access to the "device" bytes (as a cuMemcpy would see them). */
        public ByteBuffer bytes() {
            return bytes.duplicate().clear();
        }

        ByteBuffer range(long offset, long length) {
            if (closed) {
                throw new IllegalStateException("device memory used after close");
            }
            if (offset < 0 || length < 0 || offset + length > bytes.capacity()) {
                throw new IndexOutOfBoundsException("device range [" + offset + ", " + (offset + length)
                        + ") outside [0, " + bytes.capacity() + ")");
            }
            return bytes.duplicate().clear().position((int) offset).limit((int) (offset + length)).slice();
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                onClose.run();
            }
        }
    }

    private static final class HostPinned implements PinnedBuffer {
        private final ByteBuffer bytes;
        private final HostGpuDevice device;
        private boolean closed;

        HostPinned(HostGpuDevice device, int capacity) {
            this.device = device;
            this.bytes = ByteBuffer.allocateDirect(capacity);
        }

        @Override
        public ByteBuffer buffer() {
            return bytes.duplicate().clear();
        }

        @Override
        public int capacity() {
            return bytes.capacity();
        }

        ByteBuffer range(int offset, int length) {
            if (closed) {
                throw new IllegalStateException("pinned buffer used after close");
            }
            return bytes.duplicate().clear().position(offset).limit(offset + length).slice();
        }

        @Override
        public synchronized void close() {
            if (!closed) {
                closed = true;
                device.livePinned.decrementAndGet();
            }
        }
    }

    private static final class HostEvent implements GpuEvent {
        private final CompletableFuture<Void> done;

        HostEvent(CompletableFuture<Void> done) {
            this.done = done;
        }

        @Override
        public boolean isComplete() {
            if (done.isCompletedExceptionally()) {
                await(); // throws
            }
            return done.isDone();
        }

        @Override
        public void await() {
            try {
                done.get();
            } catch (ExecutionException e) {
                throw new DeviceException("device work failed: " + e.getCause().getMessage(), 700);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new DeviceException("interrupted", -1);
            }
        }

        @Override
        public void close() {
            // nothing to free
        }
    }

    private final class HostStream implements GpuStream {
        private final ExecutorService worker;
        private final AtomicReference<Throwable> fault = new AtomicReference<>();
        private boolean closed;

        HostStream(String name) {
            worker = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, name);
                t.setDaemon(true);
                return t;
            });
        }

        private void enqueue(Runnable op) {
            checkBound();
            if (closed) {
                throw new IllegalStateException("stream used after close");
            }
            worker.execute(() -> {
                if (fault.get() != null) {
                    return; // a faulted stream runs nothing more
                }
                try {
                    if (maxDelayMicros > 0) {
                        TimeUnit.MICROSECONDS.sleep(ThreadLocalRandom.current().nextInt(maxDelayMicros + 1));
                    }
                    op.run();
                } catch (Throwable t) {
                    fault.compareAndSet(null, t);
                }
            });
        }

        @Override
        public void copyToHost(DeviceMemory src, long srcOffset, PinnedBuffer dst, int dstOffset, int bytes) {
            HostMemory s = mem(src);
            HostPinned d = (HostPinned) dst;
            enqueue(() -> d.range(dstOffset, bytes).put(s.range(srcOffset, bytes)));
        }

        @Override
        public void copyToDevice(PinnedBuffer src, int srcOffset, DeviceMemory dst, long dstOffset, int bytes) {
            HostPinned s = (HostPinned) src;
            HostMemory d = mem(dst);
            enqueue(() -> d.range(dstOffset, bytes).put(s.range(srcOffset, bytes)));
        }

        @Override
        public void copy(DeviceMemory src, long srcOffset, DeviceMemory dst, long dstOffset, long bytes) {
            HostMemory s = mem(src);
            HostMemory d = mem(dst);
            enqueue(() -> d.range(dstOffset, bytes).put(s.range(srcOffset, bytes)));
        }

        @Override
        public void gather(DeviceMemory src, DeviceMemory dst, CopyRuns runs) {
            HostMemory s = mem(src);
            HostMemory d = mem(dst);
            gathers.incrementAndGet();
            enqueue(() -> {
                // piece by piece, through the same table and piece -> run search as the kernel
                long[] table = runs.encoded();
                int n = runs.count();
                for (long p = 0; p < runs.pieces(); p++) {
                    int r = runs.runOf(p);
                    long off = (p - table[3 * n + r]) * runs.pieceBytes();
                    long len = Math.min(runs.pieceBytes(), runs.length(r) - off);
                    d.range(runs.dstOffset(r) + off, len).put(s.range(runs.srcOffset(r) + off, len));
                }
            });
        }

        @Override
        public GpuEvent record() {
            checkBound();
            CompletableFuture<Void> done = new CompletableFuture<>();
            worker.execute(() -> {
                Throwable t = fault.get();
                if (t != null) {
                    done.completeExceptionally(t);
                } else {
                    done.complete(null);
                }
            });
            return new HostEvent(done);
        }

        @Override
        public void synchronize() {
            record().await();
        }

        @Override
        public void close() {
            if (closed) {
                return;
            }
            closed = true;
            worker.shutdown();
            try {
                if (!worker.awaitTermination(10, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("stream did not drain");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            liveStreams.decrementAndGet();
        }
    }

    private final Host host;
    private final String pciBusId;
    private final int maxDelayMicros;
    private final Set<Thread> bound = ConcurrentHashMap.newKeySet();
    private final AtomicInteger livePinned = new AtomicInteger();
    private final AtomicInteger liveStreams = new AtomicInteger();
    private final AtomicInteger liveImports = new AtomicInteger();
    private final AtomicInteger gathers = new AtomicInteger();
    private final AtomicInteger streamNames = new AtomicInteger();
    /** Fake device addresses handed out by {@link #gpuDirectAddress}, 64 GiB apart, so a NIC double can resolve them. */
    private final ConcurrentHashMap<Long, HostMemory> byAddress = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<HostMemory, Long> addresses = new ConcurrentHashMap<>();

    private HostGpuDevice(Host host, String pciBusId, int maxDelayMicros) {
        this.host = host;
        this.pciBusId = pciBusId;
        this.maxDelayMicros = maxDelayMicros;
    }

    /** A device of a host of its own. */
    public static HostGpuDevice standalone(int maxDelayMicros) {
        return new Host().device("0000:19:00.0", maxDelayMicros);
    }

    private void checkBound() {
        if (!bound.contains(Thread.currentThread())) {
            throw new IllegalStateException("GPU call on thread '" + Thread.currentThread().getName()
                    + "', which never bound the device's context");
        }
    }

    private static HostMemory mem(DeviceMemory m) {
        if (m instanceof HostMemory h) {
            return h;
        }
        throw new IllegalArgumentException(m + " is not memory of the device double");
    }

    /** "Device memory" over the caller's buffer (e.g. a CPU engine's KV pool standing in for a GPU one). */
    public HostMemory wrap(ByteBuffer buffer) {
        return new HostMemory(buffer.duplicate().clear().slice(), () -> { });
    }

    /** A KV pool of {@code bytes} in this device's "memory", filled from {@code seed} (0: zeros); binds the caller. */
    public DeviceRegion pool(int bytes, long seed) {
        ByteBuffer b = ByteBuffer.allocateDirect(bytes);
        if (seed != 0) {
            byte[] data = new byte[bytes];
            new java.util.Random(seed).nextBytes(data);
            b.put(data).clear();
        }
        bind();
        return new DeviceRegion(this, wrap(b));
    }

    @Override
    public String pciBusId() {
        return pciBusId;
    }

    @Override
    public void bind() {
        bound.add(Thread.currentThread());
    }

    @Override
    public GpuStream newStream() {
        checkBound();
        liveStreams.incrementAndGet();
        return new HostStream("host-gpu-stream-" + pciBusId + "-" + streamNames.incrementAndGet());
    }

    @Override
    public PinnedBuffer allocatePinned(int bytes) {
        checkBound();
        livePinned.incrementAndGet();
        return new HostPinned(this, bytes);
    }

    @Override
    public AllocatedMemory allocate(long bytes) {
        checkBound();
        return new HostMemory(ByteBuffer.allocateDirect(Math.toIntExact(bytes)), () -> { });
    }

    @Override
    public IpcExport exportIpc(DeviceMemory memory) {
        checkBound();
        byte[] handle = new byte[IpcExport.HANDLE_BYTES];
        host.random.nextBytes(handle);
        host.exports.put(Arrays.toString(handle), new Exported(this, mem(memory)));
        return new IpcExport(handle, 0);
    }

    @Override
    public ImportedMemory openIpc(byte[] handle) {
        checkBound();
        Exported e = host.exports.get(Arrays.toString(handle));
        if (e == null) {
            throw new DeviceException("cuIpcOpenMemHandle failed: CUDA_ERROR_INVALID_VALUE (invalid argument)", 1);
        }
        if (e.owner() == this) {
            throw new DeviceException("cuIpcOpenMemHandle failed: CUDA_ERROR_INVALID_CONTEXT (own handle)", 201);
        }
        liveImports.incrementAndGet();
        return new HostMemory(e.memory().bytes, liveImports::decrementAndGet);
    }

    @Override
    public long gpuDirectAddress(DeviceMemory memory) {
        checkBound();
        HostMemory m = mem(memory);
        return addresses.computeIfAbsent(m, k -> {
            long a = 0x5000_0000_0000L + ((long) addresses.size() << 36);
            byAddress.put(a, k);
            return a;
        });
    }

    /**
     * What a NIC registering {@code [address, address + length)} through GPUDirect would reach: a view of the device
     * memory that {@link #gpuDirectAddress} gave out an address in.
     *
     * @throws IllegalArgumentException if the range is not inside one such memory (ibv_reg_mr would fail)
     */
    public ByteBuffer deviceBytes(long address, long length) {
        for (var e : byAddress.entrySet()) {
            long off = address - e.getKey();
            if (off >= 0 && length >= 0 && off + length <= e.getValue().size()) {
                return e.getValue().range(off, length);
            }
        }
        throw new IllegalArgumentException("no device memory at 0x" + Long.toHexString(address) + " (+" + length + ")");
    }

    public int livePinnedBuffers() {
        return livePinned.get();
    }

    public int liveStreams() {
        return liveStreams.get();
    }

    public int liveImports() {
        return liveImports.get();
    }

    /** Gather launches so far. */
    public int gathers() {
        return gathers.get();
    }

    @Override
    public void close() {
        // nothing beyond what the tests close themselves
    }
}
