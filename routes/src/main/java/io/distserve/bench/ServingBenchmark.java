package io.distserve.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code distserve bench serving}: a workload sent to an OpenAI-style server (a proxy or one engine) at a request
 * rate, or at each rate of a sweep, measured on the client: the report table per rate, a sweep table, the JSON, the
 * plot. The workload is the same requests at every rate.
 */
public final class ServingBenchmark {

    /**
     * @param rates       one rate, or the sweep's (infinite: all at once)
     * @param warmup      requests sent (one at a time) before any measured run, not counted
     * @param compare     earlier result JSONs whose sweeps join the plot and the sweep table
     */
    public record Config(URI baseUrl, String endpoint, String model, String label, List<Double> rates,
                         double burstiness, Integer maxConcurrency, long seed, Slo slo, String apiKey,
                         Duration requestTimeout, boolean ignoreEos, int warmup, Path resultJson, Path plot,
                         List<Path> compare, String datasetDescription) {
    }

    private final ObjectMapper json = new ObjectMapper();
    private final PrintStream out;
    private final PrintStream err;

    public ServingBenchmark(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /** Runs it; returns the reports, one per rate. */
    public List<ServingReport> run(Config c, List<BenchRequest> requests) throws Exception {
        int connections = c.maxConcurrency() != null ? c.maxConcurrency() : Math.max(1, requests.size());
        List<ServingReport> reports = new ArrayList<>();
        try (ServingClient client = new ServingClient(c.baseUrl(), c.apiKey(), connections, c.requestTimeout(), json)) {
            String model = c.model() != null ? c.model() : firstModel(client);
            List<byte[]> bodies = new ArrayList<>(requests.size());
            int[] expected = new int[requests.size()];
            for (int i = 0; i < requests.size(); i++) {
                bodies.add(json.writeValueAsBytes(requests.get(i).body(json, c.endpoint(), model, c.ignoreEos())));
                expected[i] = requests.get(i).promptTokens();
            }
            out.printf(Locale.ROOT, "bench serving: %s%s, model %s, %d requests (%s), seed %d%n", c.baseUrl(),
                    c.endpoint(), model, requests.size(), c.datasetDescription(), c.seed());
            if (c.warmup() > 0) {
                List<byte[]> w = bodies.subList(0, Math.min(c.warmup(), bodies.size()));
                client.run(c.endpoint(), w, expected, new double[w.size()], 1, new ServingClient.Progress());
            }
            for (double rate : c.rates()) {
                ServingClient.Progress progress = new ServingClient.Progress();
                double[] offsets = ArrivalSchedule.offsets(bodies.size(), rate, c.burstiness(), c.seed());
                ServingClient.Run run;
                try (ProgressBar bar = new ProgressBar(err, "rate " + rateText(rate), bodies.size(), progress)) {
                    run = client.run(c.endpoint(), bodies, expected, offsets, c.maxConcurrency(), progress);
                }
                ServingReport r = ServingReport.of(c.endpoint(), rate, c.burstiness(), c.maxConcurrency(),
                        run.outcomes(), run.durationNanos(), c.slo());
                reports.add(r);
                out.print(r.table());
            }
        }
        List<SweepPlot.Series> all = new ArrayList<>();
        all.add(new SweepPlot.Series(c.label(), reports));
        for (Path p : c.compare()) {
            all.add(readSweep(p));
        }
        if (reports.size() > 1 || !c.compare().isEmpty()) {
            out.print(sweepTable(all));
        }
        if (c.resultJson() != null) {
            writeJson(c, reports);
            out.println("results: " + c.resultJson());
        }
        if (c.plot() != null) {
            SweepPlot.write(all, "bench serving: " + c.datasetDescription(), c.plot());
            out.println("plot: " + c.plot());
        }
        return reports;
    }

    private String firstModel(ServingClient client) throws Exception {
        JsonNode models = client.getJson("/v1/models").path("data");
        if (!models.isArray() || models.isEmpty()) {
            throw new IllegalStateException("the server lists no model at /v1/models; pass --model");
        }
        return models.get(0).path("id").asText();
    }

    static String rateText(double rate) {
        return Double.isInfinite(rate) ? "inf" : ServingReport.fmt(rate).replaceAll("\\.00$", "");
    }

    /** One row per (sweep, rate). */
    static String sweepTable(List<SweepPlot.Series> sweeps) {
        StringBuilder b = new StringBuilder("\n| setup | rate (req/s) | done | failed | req/s | out tok/s | TTFT p50 ms "
                + "| TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | ITL p99 ms | E2EL p99 ms | goodput (req/s) | SLO % |\n"
                + "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (SweepPlot.Series s : sweeps) {
            for (ServingReport r : s.runs()) {
                b.append(String.format(Locale.ROOT, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |%n",
                        s.label(), rateText(r.requestRate()), r.completed(), r.failed(),
                        ServingReport.fmt(r.requestThroughput()), ServingReport.fmt(r.outputThroughput()),
                        ServingReport.fmt(r.ttftMs().median()), ServingReport.fmt(r.ttftMs().p99()),
                        ServingReport.fmt(r.tpotMs().median()), ServingReport.fmt(r.tpotMs().p99()),
                        ServingReport.fmt(r.itlMs().p99()), ServingReport.fmt(r.e2elMs().p99()),
                        ServingReport.fmt(r.goodput()), ServingReport.fmt(r.sloAttainment())));
            }
        }
        return b.toString();
    }

    private void writeJson(Config c, List<ServingReport> reports) throws IOException {
        ObjectNode root = json.createObjectNode();
        root.put("label", c.label());
        root.put("base_url", c.baseUrl().toString());
        root.put("endpoint", c.endpoint());
        root.put("dataset", c.datasetDescription());
        root.put("burstiness", c.burstiness());
        if (c.maxConcurrency() != null) {
            root.put("max_concurrency", c.maxConcurrency());
        }
        root.put("seed", c.seed());
        if (!c.slo().isEmpty()) {
            root.put("slo", c.slo().toString());
        }
        ArrayNode runs = root.putArray("runs");
        for (ServingReport r : reports) {
            ObjectNode n = json.valueToTree(r);
            if (Double.isInfinite(r.requestRate())) {
                n.put("requestRate", "inf");
            }
            runs.add(n);
        }
        Path parent = c.resultJson().toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        json.writerWithDefaultPrettyPrinter().writeValue(c.resultJson().toFile(), root);
    }

    /** A sweep from an earlier --result-json. */
    SweepPlot.Series readSweep(Path file) throws IOException {
        JsonNode root = json.readTree(file.toFile());
        List<ServingReport> runs = new ArrayList<>();
        for (JsonNode n : root.path("runs")) {
            ObjectNode copy = n.deepCopy();
            if ("inf".equals(copy.path("requestRate").asText())) {
                copy.put("requestRate", Double.POSITIVE_INFINITY);
            }
            runs.add(json.treeToValue(copy, ServingReport.class));
        }
        if (runs.isEmpty()) {
            throw new IllegalArgumentException(file + " holds no bench serving runs");
        }
        return new SweepPlot.Series(root.path("label").asText(file.getFileName().toString()), runs);
    }
}
