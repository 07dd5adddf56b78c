package io.distserve.kv.nvlink;

import io.distserve.kv.device.GpuDevice;
import io.distserve.kv.device.GpuEvent;
import java.util.concurrent.LinkedBlockingQueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one thread of an nvlink transport: waits for each gather's event, in launch order, and completes its batch.
 * Callers never block on the GPU to find out; {@link #close()} lets every queued gather finish first.
 */
final class GatherCompleter implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(GatherCompleter.class);

    private record Watch(GpuEvent event, GatherBatch batch, Runnable after) {
    }

    private static final Watch STOP = new Watch(null, null, null);

    private final GpuDevice device;
    private final LinkedBlockingQueue<Watch> queue = new LinkedBlockingQueue<>();
    private final Thread thread;

    GatherCompleter(GpuDevice device, String threadName) {
        this.device = device;
        this.thread = new Thread(this::run, threadName);
        this.thread.setDaemon(true); // close() joins it; daemon only so a forgotten close can't hang JVM exit
        this.thread.start();
    }

    /** Completes {@code batch} once {@code event} has; then runs {@code after} (bookkeeping of the connection). */
    void watch(GpuEvent event, GatherBatch batch, Runnable after) {
        queue.add(new Watch(event, batch, after));
    }

    private void run() {
        boolean bound = false;
        while (true) {
            Watch w;
            try {
                w = queue.take();
            } catch (InterruptedException e) {
                continue; // only STOP ends this thread: every queued batch must complete
            }
            if (w == STOP) {
                return;
            }
            try {
                if (!bound) {
                    device.bind();
                    bound = true;
                }
                w.event().await();
                w.batch().done();
            } catch (RuntimeException e) {
                log.warn("gather failed on the device: {}", e.toString());
                w.batch().failed(e);
            } finally {
                w.event().close();
                w.after().run();
            }
        }
    }

    @Override
    public void close() {
        queue.add(STOP);
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
