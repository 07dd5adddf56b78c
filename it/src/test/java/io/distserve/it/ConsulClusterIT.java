package io.distserve.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.registry.consul.ConsulDouble;
import java.io.IOException;
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
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A DistServe cluster that meets only through Consul (the {@link ConsulDouble}, in this JVM): a Prefill and a
 * Decode engine started with {@code --consul-url} and no {@code --proxy-url}, and two proxies with
 * {@code --consul-url}. Both proxies route DistServe requests; a proxy started after the pair was connected knows
 * the pair from the engines without a warmup; killing the decode engine (SIGKILL, no deregistration) takes it out
 * of both proxies' routing sets through its failing Consul check; restarting it on its port brings it back to both
 * without touching the proxies.
 */
class ConsulClusterIT {

    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    static final String REQUEST = "{\"model\":\"tiny\",\"prompt\":\"Shanghai is a city that \",\"max_tokens\":8,"
            + "\"temperature\":0,\"ignore_eos\":true}";

    @TempDir
    static Path dir;

    static ConsulDouble consul;
    static Path model;
    static Path properties;
    static final List<Server> servers = new ArrayList<>();

    /** One {@code java -jar distserve.jar serve ...} child process; its output goes to target/it-logs. */
    record Server(String name, Process process, int port, Path log) {
        String base() {
            return "http://127.0.0.1:" + port;
        }

        void kill() throws InterruptedException {
            process.destroyForcibly();
            process.waitFor(30, TimeUnit.SECONDS);
        }

        void stop() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(40, TimeUnit.SECONDS)) {
                kill();
            }
        }
    }

    static Server start(String name, int port, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m", "-XX:+UseSerialGC", "-jar", ServerProcess.jar().toString(), "serve"));
        cmd.addAll(List.of(args));
        cmd.addAll(List.of("--server-name", "127.0.0.1", "--server-port", Integer.toString(port),
                "--consul-url", consul.url(), "--properties", properties.toString(), "--log-level", "INFO"));
        Path log = ServerProcess.logs().resolve("consul-" + name + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        Server server = new Server(name, p, port, log);
        servers.add(server);
        await().atMost(Duration.ofSeconds(90)).pollInterval(Duration.ofMillis(200)).until(() -> {
            if (!p.isAlive()) {
                throw new IllegalStateException(name + " exited with " + p.exitValue() + ":\n" + Files.readString(log));
            }
            try {
                return get(server, "/health").statusCode() == 200;
            } catch (IOException e) {
                return false;
            }
        });
        return server;
    }

    static Server engine(String name, String role, int port) throws Exception {
        return start(name, port, "api_server", model.toString(), "--role", role, "--threads", "1",
                "--cache-max-entry-count", "0.05");
    }

    static Server proxy(String name) throws Exception {
        return start(name, ServerProcess.freePort(), "proxy", "--serving-strategy", "DistServe",
                "--node-table", dir.resolve(name + "-nodes.json").toString());
    }

    static HttpResponse<String> get(Server s, String path) throws IOException, InterruptedException {
        return HTTP.send(HttpRequest.newBuilder(URI.create(s.base() + path)).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> complete(Server proxy) throws IOException, InterruptedException {
        return HTTP.send(HttpRequest.newBuilder(URI.create(proxy.base() + "/v1/completions"))
                .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(REQUEST)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode status(Server proxy) throws IOException, InterruptedException {
        return JSON.readTree(get(proxy, "/nodes/status").body());
    }

    static List<String> nodeUrls(Server proxy) throws IOException, InterruptedException {
        return StreamSupport.stream(status(proxy).path("nodes").spliterator(), false)
                .map(n -> n.path("url").asText()).toList();
    }

    @BeforeAll
    static void cluster() throws Exception {
        consul = ConsulDouble.start();
        model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 7, null).withThreads(1).writeTo(model);
        properties = dir.resolve("consul.properties");
        Files.writeString(properties, String.join("\n",
                "distserve.consul.checkInterval = 300ms",
                "distserve.consul.checkTimeout = 2s",
                // four JVMs on a small machine: a probe may be slow once; two failures in a row are an outage
                "distserve.consul.failuresBeforeCritical = 1",
                "distserve.consul.deregisterCriticalServiceAfter = 1m",
                "distserve.consul.syncInterval = 1s",
                "distserve.consul.wait = 3s",
                // the proxies' own probes are slow here, so what takes a node out is Consul
                "distserve.proxy.healthIntervalSeconds = 60", ""));
    }

    @AfterAll
    static void stopAll() throws Exception {
        for (int i = servers.size() - 1; i >= 0; i--) {
            servers.get(i).stop();
        }
        if (consul != null) {
            consul.close();
        }
    }

    @Test
    void twoProxiesRouteThroughConsulAndFollowTheDecodeEngineDownAndBack() throws Exception {
        Server prefill = engine("prefill", "Prefill", ServerProcess.freePort());
        int decodePort = ServerProcess.freePort();
        Server decode = engine("decode", "Decode", decodePort);
        await().atMost(Duration.ofSeconds(20)).until(() -> consul.serviceIds().size() == 2
                && consul.serviceIds().stream().allMatch(id -> "passing".equals(consul.checkStatus(id))));
        // the registration carries the check settings of --properties (they override application.properties)
        assertThat(consul.service("distserve-127.0.0.1-" + decodePort).path("Check").path("Interval").asText())
                .isEqualTo("300ms");

        // proxy A finds both engines in Consul and routes a DistServe request (prefill, migrate, decode)
        Server proxyA = proxy("proxy-a");
        await().atMost(Duration.ofSeconds(20)).until(() -> nodeUrls(proxyA).size() == 2);
        assertThat(nodeUrls(proxyA)).containsExactlyInAnyOrder(prefill.base(), decode.base());
        assertThat(status(proxyA).path("nodes").get(0).path("source").asText()).isEqualTo("consul");
        HttpResponse<String> first = complete(proxyA);
        assertThat(first.statusCode()).as(first.body()).isEqualTo(200);
        String text = JSON.readTree(first.body()).path("choices").get(0).path("text").asText();
        assertThat(JSON.readTree(first.body()).path("usage").path("completion_tokens").asInt()).isEqualTo(8);

        // proxy B, started now, learns the connected pair from the engines: no warmup, no request, no reconnect
        Server proxyB = proxy("proxy-b");
        await().atMost(Duration.ofSeconds(20)).until(() -> status(proxyB).path("connected_pairs").size() == 1);
        JsonNode pair = status(proxyB).path("connected_pairs").get(0);
        assertThat(pair.path("prefill").asText()).isEqualTo(prefill.base());
        assertThat(pair.path("decode").asText()).isEqualTo(decode.base());
        assertThat(JSON.readTree(get(decode, "/distserve/engine_info").body()).path("peers")).hasSize(1);
        HttpResponse<String> viaB = complete(proxyB);
        assertThat(viaB.statusCode()).as(viaB.body()).isEqualTo(200);
        assertThat(JSON.readTree(viaB.body()).path("choices").get(0).path("text").asText()).isEqualTo(text);
        assertThat(Files.readString(proxyB.log())).contains("learned from " + decode.base());

        // kill the decode engine: its Consul check fails and both proxies drop it
        decode.kill();
        for (Server proxy : List.of(proxyA, proxyB)) {
            await().atMost(Duration.ofSeconds(15)).until(() -> !nodeUrls(proxy).contains(decode.base()));
            assertThat(nodeUrls(proxy)).containsExactly(prefill.base());
            HttpResponse<String> none = complete(proxy);
            assertThat(none.statusCode()).as(none.body()).isEqualTo(503);
        }

        // restart it on the same port: the proxies, untouched, route to it again
        Server restarted = engine("decode-restarted", "Decode", decodePort);
        for (Server proxy : List.of(proxyA, proxyB)) {
            await().atMost(Duration.ofSeconds(20)).until(() -> nodeUrls(proxy).contains(restarted.base()));
            HttpResponse<String> again = complete(proxy);
            assertThat(again.statusCode()).as(again.body()).isEqualTo(200);
            assertThat(JSON.readTree(again.body()).path("choices").get(0).path("text").asText()).isEqualTo(text);
        }

        // Consul's nodes are not written to the proxies' node-table files
        for (String name : List.of("proxy-a", "proxy-b")) {
            Path table = dir.resolve(name + "-nodes.json");
            if (Files.exists(table)) {
                assertThat(JSON.readTree(table.toFile()).path("nodes")).isEmpty();
            }
        }

        // a clean stop deregisters at once
        restarted.stop();
        await().atMost(Duration.ofSeconds(10)).until(() -> consul.serviceIds().size() == 1);
    }
}
