package io.distserve.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.bench.BenchRequest;
import io.distserve.bench.Datasets;
import io.distserve.bench.ServingBenchmark;
import io.distserve.bench.ServingReport;
import io.distserve.bench.Slo;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.engine.tokenizer.ModelTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code bench serving} against the demo cluster: a DistServe proxy with a Prefill and a Decode engine (tiny model,
 * CPU) as real processes. The server's token counts match the workload's, every request completes, the JSON and the
 * plot are written, and a sweep compares with an earlier result.
 */
class BenchServingIT {

    @TempDir
    static Path dir;

    static Path model;
    static ServerProcess proxy;
    static ServerProcess prefill;
    static ServerProcess decode;

    @BeforeAll
    static void cluster() throws Exception {
        model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 3, null).withThreads(1).writeTo(model);
        int proxyPort = ServerProcess.freePort();
        proxy = ServerProcess.proxy("bench-proxy", proxyPort, "--serving-strategy", "DistServe",
                "--node-table", dir.resolve("nodes.json").toString(), "--log-level", "WARNING");
        String url = "http://127.0.0.1:" + proxyPort;
        prefill = ServerProcess.launchApiServer("bench-prefill", ServerProcess.freePort(), model, "--role", "Prefill",
                "--proxy-url", url, "--cache-max-entry-count", "0.1", "--log-level", "WARNING");
        decode = ServerProcess.launchApiServer("bench-decode", ServerProcess.freePort(), model, "--role", "Decode",
                "--proxy-url", url, "--cache-max-entry-count", "0.1", "--log-level", "WARNING");
        prefill.healthy();
        decode.healthy();
        Http.awaitHealthyNodes(proxy.base, null, 2);
    }

    @AfterAll
    static void stop() {
        for (ServerProcess s : new ServerProcess[] {decode, prefill, proxy}) {
            if (s != null) {
                s.kill();
            }
        }
    }

    private static ServingBenchmark.Config config(List<Double> rates, String label, Path json, Path plot,
                                                  List<Path> compare) {
        return new ServingBenchmark.Config(URI.create(proxy.base), "/v1/completions", null, label, rates, 1.0, null, 1,
                Slo.parse(List.of("ttft:5000", "tpot:1000")), null, Duration.ofSeconds(120), true, 1, json, plot,
                compare, "random input 64, output 8");
    }

    @Test
    void theWorkloadsCountsAreTheServersAndEveryRequestCompletes() throws Exception {
        List<BenchRequest> requests;
        try (ModelTokenizer t = ModelTokenizer.load(model)) {
            requests = Datasets.random(t.tokenizer(), 12, 64, 8, 0.0, 1, true);
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Path first = dir.resolve("first.json");
        List<ServingReport> reports = new ServingBenchmark(new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(new ByteArrayOutputStream())).run(config(List.of(Double.POSITIVE_INFINITY, 6.0),
                "DistServe", first, null, List.of()), requests);
        assertThat(reports).hasSize(2);
        for (ServingReport r : reports) {
            assertThat(r.failed()).as(r.errors().toString()).isZero();
            assertThat(r.completed()).isEqualTo(12);
            assertThat(r.inputTokens()).as("the server counted the prompts as the workload made them").isEqualTo(12 * 64);
            assertThat(r.outputTokens()).isEqualTo(12 * 8);
            assertThat(r.ttftMs().median()).isPositive();
            assertThat(r.tpotMs().count()).isEqualTo(12);
            assertThat(r.goodput()).isPositive();
        }
        assertThat(out.toString(StandardCharsets.UTF_8)).contains("Serving Benchmark Result").contains("| DistServe | inf |");
        JsonNode saved = Http.JSON.readTree(first.toFile());
        assertThat(saved.path("runs").size()).isEqualTo(2);
        assertThat(saved.path("runs").get(0).path("requestRate").asText()).isEqualTo("inf");

        // a second sweep, compared with the first in one table and one plot
        Path plot = dir.resolve("sweep.png");
        ByteArrayOutputStream out2 = new ByteArrayOutputStream();
        new ServingBenchmark(new PrintStream(out2, true, StandardCharsets.UTF_8),
                new PrintStream(new ByteArrayOutputStream())).run(config(List.of(6.0), "again", null, plot,
                List.of(first)), requests);
        assertThat(out2.toString(StandardCharsets.UTF_8)).contains("| again | 6 |").contains("| DistServe | 6 |");
        assertThat(Files.size(plot)).isGreaterThan(5_000);
        assertThat(Files.readAllBytes(plot)).startsWith((byte) 0x89, (byte) 'P', (byte) 'N', (byte) 'G');
    }
}
