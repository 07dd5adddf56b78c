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

    /** JVM flags of every child: small heap (the machine is shared), serial GC. */
    static List<String> java(String... jvmFlags) {
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx384m", "-XX:+UseSerialGC"));
        cmd.addAll(List.of(jvmFlags));
        return cmd;
    }

    /**
     * Starts {@code serve api_server MODEL_DIR --server-name 127.0.0.1 --server-port <free> --threads 1 <extra>}
     * in a 384 MiB JVM and waits for /health.
     */
    static ServerProcess apiServer(String name, Path modelDir, String... extra) throws Exception {
        return apiServer(name, freePort(), modelDir, extra);
    }

    static ServerProcess apiServer(String name, int port, Path modelDir, String... extra) throws Exception {
        return launchApiServer(name, port, modelDir, extra).healthy();
    }

    /** As {@link #apiServer} without waiting: start several, then {@link #healthy()} each. */
    static ServerProcess launchApiServer(String name, int port, Path modelDir, String... extra) throws IOException {
        List<String> cmd = java("-jar", jar().toString(),
                "serve", "api_server", modelDir.toString(),
                "--server-name", "127.0.0.1", "--server-port", Integer.toString(port), "--threads", "1");
        cmd.addAll(List.of(extra));
        return launch(name, port, cmd);
    }

    /** Starts {@code serve proxy --server-name 127.0.0.1 --server-port PORT <extra>} and waits for /health. */
    static ServerProcess proxy(String name, int port, String... extra) throws Exception {
        List<String> cmd = java("-jar", jar().toString(),
                "serve", "proxy", "--server-name", "127.0.0.1", "--server-port", Integer.toString(port));
        cmd.addAll(List.of(extra));
        return start(name, port, cmd);
    }

    /**
     * Starts an {@link EngineStub} (one JVM, one server per {@code PORT[:DELAY_MS]} spec) and waits for the first
     * port's /health.
     */
    static ServerProcess stub(String name, String... portSpecs) throws Exception {
        String classes;
        try {
            classes = Path.of(EngineStub.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx128m", "-XX:+UseSerialGC", "-cp", classes, EngineStub.class.getName()));
        cmd.addAll(List.of(portSpecs));
        return start(name, Integer.parseInt(portSpecs[0].split(":")[0]), cmd);
    }

    /** Starts {@code cmd} (a server on {@code port}), its output in target/it-logs/NAME.log; waits for /health. */
    static ServerProcess start(String name, int port, List<String> cmd) throws Exception {
        return launch(name, port, cmd).healthy();
    }

    /** Starts {@code cmd} without waiting for it. */
    static ServerProcess launch(String name, int port, List<String> cmd) throws IOException {
        Path log = logs().resolve(name + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new ServerProcess(p, port, log);
    }

    /** Waits until healthy (see {@link #awaitHealthy()}); on failure the process is stopped and the error thrown. */
    ServerProcess healthy() throws InterruptedException {
        try {
            awaitHealthy();
        } catch (RuntimeException | Error e) {
            close();
            throw e;
        }
        return this;
    }

    /** Waits (90 s at most) until GET /health answers 200; fails at once if the process exited. */
    void awaitHealthy() {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        await().atMost(Duration.ofSeconds(90)).pollInterval(Duration.ofMillis(200)).until(() -> {
            if (!process.isAlive()) {
                throw new IllegalStateException("the server exited with " + process.exitValue() + "; see " + log
                        + ":\n" + Files.readString(log));
            }
            try {
                return http.send(HttpRequest.newBuilder(URI.create(base + "/health")).build(),
                        HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
            } catch (IOException e) {
                return false;
            }
        });
    }

    String output() throws IOException {
        return Files.readString(log);
    }

    /** SIGKILL, as a crash would: no drain, no goodbye to the proxy. Waits until it is gone. */
    void kill() {
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
