package io.distserve.cli;

import io.distserve.bench.BenchRequest;
import io.distserve.bench.Datasets;
import io.distserve.bench.ServingBenchmark;
import io.distserve.bench.Slo;
import io.distserve.engine.tokenizer.ModelTokenizer;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code distserve bench serving}: the serving benchmark (vLLM's {@code bench serve}, SGLang's {@code bench_serving}):
 * TTFT, TPOT, ITL, E2E latency and goodput of a workload sent to a proxy or an engine at a request rate.
 */
@Command(name = "serving", mixinStandardHelpOptions = true,
        description = "Measure a server under load: TTFT, TPOT, ITL, E2E latency percentiles, throughput and goodput "
                + "under SLOs, at one request rate or a sweep of them.")
final class BenchServingCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    LoggingOptions logging;

    @Option(names = "--base-url", required = true, paramLabel = "URL",
            description = "The server: a proxy or an engine, e.g. http://127.0.0.1:8000.")
    String baseUrl;

    @Option(names = "--endpoint", defaultValue = "/v1/completions",
            description = "/v1/completions or /v1/chat/completions (default: ${DEFAULT-VALUE}).")
    String endpoint;

    @Option(names = "--model", description = "The model name to ask for (default: the first of /v1/models).")
    String model;

    @Option(names = "--tokenizer", required = true, paramLabel = "DIR",
            description = "A folder with the served model's tokenizer.json (the model folder): prompts are made of, "
                    + "and lengths counted in, its tokens.")
    Path tokenizer;

    @Option(names = "--dataset", arity = "1..2", paramLabel = "NAME [FILE]", defaultValue = "random",
            description = "random, sharegpt FILE (the ShareGPT JSON) or prefix-repeat (default: ${DEFAULT-VALUE}).")
    List<String> dataset;

    @Option(names = "--dataset-path", paramLabel = "FILE", description = "The ShareGPT file (as vLLM spells it).")
    Path datasetPath;

    @Option(names = "--num-prompts", defaultValue = "100", description = "Requests per run (default: ${DEFAULT-VALUE}).")
    int numPrompts;

    @Option(names = "--request-rate", defaultValue = "inf", paramLabel = "R|inf",
            description = "Requests per second, or inf to send all at once (default: ${DEFAULT-VALUE}).")
    String requestRate;

    @Option(names = "--burstiness", defaultValue = "1.0",
            description = "Gamma shape of the arrival gaps: 1 is Poisson, < 1 burstier, > 1 more even (default: "
                    + "${DEFAULT-VALUE}).")
    double burstiness;

    @Option(names = "--max-concurrency", description = "At most this many requests in flight (default: no cap).")
    Integer maxConcurrency;

    @Option(names = "--input-len", defaultValue = "512",
            description = "random: prompt tokens; prefix-repeat: tokens after the shared prefix (default: ${DEFAULT-VALUE}).")
    int inputLen;

    @Option(names = "--output-len", description = "Tokens to generate (default 64; sharegpt: the reply's length).")
    Integer outputLen;

    @Option(names = "--range-ratio", defaultValue = "0.0",
            description = "Lengths drawn within L x (1 - X) .. L x (1 + X), X in [0, 1) (default: ${DEFAULT-VALUE}).")
    double rangeRatio;

    @Option(names = "--prefix-count", defaultValue = "4", description = "prefix-repeat: shared prefixes (default: ${DEFAULT-VALUE}).")
    int prefixCount;

    @Option(names = "--prefix-len", defaultValue = "512", description = "prefix-repeat: tokens of each prefix (default: ${DEFAULT-VALUE}).")
    int prefixLen;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the dataset and the arrivals (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--goodput", arity = "1..3", paramLabel = "KEY:MS",
            description = "SLOs for goodput: ttft:MS tpot:MS e2el:MS (any of them).")
    List<String> goodput = new ArrayList<>();

    @Option(names = "--sweep-rates", split = ",", paramLabel = "R",
            description = "Run once per rate (same requests), e.g. 1,2,4,8,inf; overrides --request-rate.")
    List<String> sweepRates = new ArrayList<>();

    @Option(names = "--warmup", defaultValue = "1",
            description = "Requests sent one by one before measuring, not counted: the first checks the server and "
                    + "warms the client, as vLLM's initial test run (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--label", description = "This setup's name in the sweep table, the plot and the JSON.")
    String label;

    @Option(names = "--compare", paramLabel = "FILE.json",
            description = "An earlier --result-json whose sweep joins this one's table and plot (repeatable).")
    List<Path> compare = new ArrayList<>();

    @Option(names = "--result-json", paramLabel = "FILE", description = "Write the results as JSON.")
    Path resultJson;

    @Option(names = "--plot", paramLabel = "FILE.png",
            description = "Write goodput, p99 TTFT and p99 TPOT against the request rate as a PNG.")
    Path plot;

    @Option(names = "--api-key", paramLabel = "K", description = "Sent as 'Authorization: Bearer K'.")
    String apiKey;

    @Option(names = "--request-timeout", defaultValue = "600",
            description = "Seconds a request may stay silent before it counts as failed (default: ${DEFAULT-VALUE}).")
    int requestTimeout;

    @Option(names = "--ignore-eos", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Ask for ignore_eos, so that answers have the asked lengths (default: on).")
    boolean ignoreEos;

    @Override
    public Integer call() throws Exception {
        logging.apply();
        ServingBenchmark.Config c = config();
        List<BenchRequest> requests = requests(c);
        new ServingBenchmark(System.out, System.err).run(c, requests);
        return 0;
    }

    private ParameterException bad(String message) {
        return new ParameterException(spec.commandLine(), message);
    }

    static double parseRate(String s) {
        if (s.equalsIgnoreCase("inf")) {
            return Double.POSITIVE_INFINITY;
        }
        double r = Double.parseDouble(s);
        if (!(r > 0) || Double.isInfinite(r)) {
            throw new NumberFormatException();
        }
        return r;
    }

    String datasetName() {
        return dataset.get(0).toLowerCase(Locale.ROOT);
    }

    Path shareGptFile() {
        return dataset.size() > 1 ? Path.of(dataset.get(1)) : datasetPath;
    }

    ServingBenchmark.Config config() {
        URI url;
        try {
            url = URI.create(baseUrl);
        } catch (IllegalArgumentException e) {
            throw bad("--base-url: " + e.getMessage());
        }
        if (!("http".equals(url.getScheme()) || "https".equals(url.getScheme())) || url.getHost() == null) {
            throw bad("--base-url must be http(s)://host:port, got " + baseUrl);
        }
        if (!endpoint.equals("/v1/completions") && !endpoint.equals("/v1/chat/completions")) {
            throw bad("--endpoint must be /v1/completions or /v1/chat/completions, got " + endpoint);
        }
        String name = datasetName();
        if (!List.of("random", "sharegpt", "prefix-repeat").contains(name)) {
            throw bad("--dataset must be random, sharegpt FILE or prefix-repeat, got " + dataset.get(0));
        }
        if (name.equals("sharegpt")) {
            Path f = shareGptFile();
            if (f == null) {
                throw bad("--dataset sharegpt needs the ShareGPT JSON file: --dataset sharegpt FILE");
            }
            if (!Files.isRegularFile(f)) {
                throw bad("--dataset sharegpt: " + f + " is not a file");
            }
        } else if (dataset.size() > 1) {
            throw bad("--dataset " + name + " takes no file");
        }
        if (!Files.isRegularFile(tokenizer.resolve("tokenizer.json"))) {
            throw bad("--tokenizer " + tokenizer + " has no tokenizer.json");
        }
        if (numPrompts < 1) {
            throw bad("--num-prompts must be >= 1");
        }
        if (inputLen < 1 || (outputLen != null && outputLen < 1)) {
            throw bad("--input-len and --output-len must be >= 1");
        }
        if (!(rangeRatio >= 0 && rangeRatio < 1)) {
            throw bad("--range-ratio must be in [0, 1)");
        }
        if (!(burstiness > 0) || Double.isInfinite(burstiness)) {
            throw bad("--burstiness must be a positive number");
        }
        if (maxConcurrency != null && maxConcurrency < 1) {
            throw bad("--max-concurrency must be >= 1");
        }
        if (prefixCount < 1 || prefixLen < 1) {
            throw bad("--prefix-count and --prefix-len must be >= 1");
        }
        if (warmup < 0 || requestTimeout < 1) {
            throw bad("--warmup must be >= 0 and --request-timeout >= 1");
        }
        List<Double> rates = new ArrayList<>();
        for (String r : sweepRates.isEmpty() ? List.of(requestRate) : sweepRates) {
            try {
                rates.add(parseRate(r.trim()));
            } catch (NumberFormatException e) {
                throw bad((sweepRates.isEmpty() ? "--request-rate" : "--sweep-rates") + ": '" + r
                        + "' is not a positive number or inf");
            }
        }
        Slo slo;
        try {
            slo = Slo.parse(goodput);
        } catch (IllegalArgumentException e) {
            throw bad(e.getMessage());
        }
        for (Path p : compare) {
            if (!Files.isRegularFile(p)) {
                throw bad("--compare " + p + " is not a file");
            }
        }
        String description = switch (name) {
            case "sharegpt" -> "sharegpt " + shareGptFile().getFileName()
                    + (outputLen != null ? ", output " + outputLen : "");
            case "prefix-repeat" -> String.format(Locale.ROOT, "prefix-repeat %d x %d + %d, output %d", prefixCount,
                    prefixLen, inputLen, out());
            default -> String.format(Locale.ROOT, "random input %d, output %d", inputLen, out());
        } + (rangeRatio > 0 ? ", range ratio " + rangeRatio : "");
        return new ServingBenchmark.Config(url, endpoint, model, label != null ? label : baseUrl, rates, burstiness,
                maxConcurrency, seed, slo, apiKey, Duration.ofSeconds(requestTimeout), ignoreEos, warmup, resultJson,
                plot, compare, description);
    }

    private int out() {
        return outputLen != null ? outputLen : 64;
    }

    List<BenchRequest> requests(ServingBenchmark.Config c) throws Exception {
        boolean ids = c.endpoint().equals("/v1/completions");
        try (ModelTokenizer t = ModelTokenizer.load(tokenizer)) {
            return switch (datasetName()) {
                case "sharegpt" -> Datasets.shareGpt(shareGptFile(), t.tokenizer(), numPrompts, outputLen, seed,
                        new com.fasterxml.jackson.databind.ObjectMapper());
                case "prefix-repeat" -> Datasets.prefixRepeat(t.tokenizer(), numPrompts, prefixCount, prefixLen,
                        inputLen, out(), rangeRatio, seed, ids);
                default -> Datasets.random(t.tokenizer(), numPrompts, inputLen, out(), rangeRatio, seed, ids);
            };
        }
    }
}
