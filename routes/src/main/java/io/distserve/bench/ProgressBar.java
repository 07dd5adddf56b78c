package io.distserve.bench;

import java.io.PrintStream;
import java.util.Locale;

/** A one-line progress bar on stderr while a run goes: requests done, failed, in flight. */
final class ProgressBar implements AutoCloseable {

    private final PrintStream out;
    private final String label;
    private final int total;
    private final ServingClient.Progress progress;
    private final Thread thread;
    private volatile boolean running = true;

    ProgressBar(PrintStream out, String label, int total, ServingClient.Progress progress) {
        this.out = out;
        this.label = label;
        this.total = total;
        this.progress = progress;
        this.thread = new Thread(this::loop, "bench-progress");
        this.thread.setDaemon(true);
        this.thread.start();
    }

    private void loop() {
        while (running) {
            draw();
            try {
                Thread.sleep(250);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private void draw() {
        int done = progress.done();
        int width = 30;
        int filled = total == 0 ? width : (int) ((long) width * done / total);
        out.printf(Locale.ROOT, "\r%s [%s%s] %d/%d done, %d failed, %d in flight ", label, "#".repeat(filled),
                " ".repeat(width - filled), done, total, progress.failed(), progress.inFlight());
        out.flush();
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        draw();
        out.println();
    }
}
