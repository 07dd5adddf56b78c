package io.distserve.kv.nvlink;

import io.distserve.kv.device.GpuDevice;
import java.util.concurrent.LinkedBlockingQueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one thread of an nvlink transport: waits for each gather's event, in launch order, completes its batch (unless
 * a caller polling in {@code await} was first) and frees the event. {@link #close()} lets every queued gather finish
 * first.
 */
final class GatherCompleter implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(GatherCompleter.class);

    private record Watch(GatherBatch batch, Runnable after) {
    }

    private static final Watch STOP = new Watch(null, null);

    private final GpuDevice device;
    private final LinkedBlockingQueue<Watch> queue = new LinkedBlockingQueue<>();
    private final Thread thread;

    GatherCompleter(GpuDevice device, String threadName) {
        this.device = device;
        this.thread = new Thread(this::run, threadName);
        this.thread.setDaemon(true); // close() joins it; daemon only so a forgotten close can't hang JVM exit
        this.thread.start();
    }

    /** Completes {@code batch} once its event has; then runs {@code after} (bookkeeping of the connection). */
    void watch(GatherBatch batch, Runnable after) {
        queue.add(new Watch(batch, after));
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
                w.batch().settleAndRelease();
            } catch (RuntimeException e) {
                log.warn("waiting for a gather failed: {}", e.toString());
                w.batch().failed(e);
            } finally {
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
