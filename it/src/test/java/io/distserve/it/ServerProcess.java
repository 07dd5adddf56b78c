package io.distserve.it;

import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * {@code java -jar routes/target/distserve.jar ...} as a child process, its output in a file under
 * target/it-logs. Always reaped: {@link #close()} (from {@code @AfterAll}) and a shutdown hook destroy it and wait.
 */
final class ServerProcess implements AutoCloseable {

    final Process process;
    final int port;
    final String base;
    final Path log;
    private final Thread hook;

    private ServerProcess(Process process, int port, Path log) {
        this.process = process;
        this.port = port;
        this.base = "http://127.0.0.1:" + port;
        this.log = log;
        this.hook = new Thread(this::kill, "reap-" + port);
        Runtime.getRuntime().addShutdownHook(hook);
    }

    static Path jar() {
        Path jar = Path.of(System.getProperty("distserve.jar", "../routes/target/distserve.jar"));
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException("no runnable jar at " + jar.toAbsolutePath()
                    + ": build routes first (mvn package)");
        }
        return jar;
    }

    static Path logs() throws IOException {
        Path dir = Path.of(System.getProperty("distserve.it.logs", "target/it-logs"));
        Files.createDirectories(dir);
        return dir;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /**
     * Starts {@code serve api_server MODEL_DIR --server-name 127.0.0.1 --server-port <free> --threads 1 <extra>}
     * in a 512 MiB JVM and waits for /health.
     */
    static ServerProcess apiServer(String name, Path modelDir, String... extra) throws Exception {
        int port = freePort();
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m", "-XX:+UseSerialGC",
                "-jar", jar().toString(),
                "serve", "api_server", modelDir.toString(),
                "--server-name", "127.0.0.1", "--server-port", Integer.toString(port), "--threads", "1"));
        cmd.addAll(List.of(extra));
        Path log = logs().resolve(name + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        ServerProcess server = new ServerProcess(p, port, log);
        try {
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
            await().atMost(Duration.ofSeconds(90)).pollInterval(Duration.ofMillis(200)).until(() -> {
                if (!p.isAlive()) {
                    throw new IllegalStateException("the server exited with " + p.exitValue() + "; see " + log
                            + ":\n" + Files.readString(log));
                }
                try {
                    return http.send(HttpRequest.newBuilder(URI.create(server.base + "/health")).build(),
                            HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
                } catch (IOException e) {
                    return false;
                }
            });
        } catch (RuntimeException | Error e) {
            server.close();
            throw e;
        }
        return server;
    }

    String output() throws IOException {
        return Files.readString(log);
    }

    private void kill() {
        if (process.isAlive()) {
            process.destroyForcibly();
            try {
                process.waitFor(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** SIGTERM (the server drains and stops), then SIGKILL if it has not exited in 40 s. Returns the exit code. */
    int stop() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(40, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(30, TimeUnit.SECONDS);
        }
        return process.isAlive() ? -1 : process.exitValue();
    }

    @Override
    public void close() throws InterruptedException {
        try {
            stop();
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook runs anyway
            }
        }
    }
}
