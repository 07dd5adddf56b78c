package io.distserve.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.bench.EngineBenchmark;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code distserve bench engine}: prompt and decode tokens/s of the engine on generated checkpoints of the
 * reference shapes (or on a model folder), printed as a Markdown table.
 */
@Command(name = "engine", mixinStandardHelpOptions = true,
        description = "Prompt (prefill) and decode tokens/s of the engine, on generated checkpoints of the given "
                + "shapes or on --model folders; prints a Markdown table.")
final class BenchEngineCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    LoggingOptions logging;

    @Option(names = "--shape", split = ",", description = "Shapes to generate: tiny, qwen3-0.6b, qwen3-8b.")
    List<String> shapes = new ArrayList<>();

    @Option(names = "--model", description = "Model folders to benchmark (besides --shape).")
    List<Path> models = new ArrayList<>();

    @Option(names = "--tokenizer", paramLabel = "DIR", description = "Tokenizer folder for generated shapes other than tiny.")
    Path tokenizer;

    @Option(names = "--batch", split = ",", defaultValue = "1,8", description = "Batch sizes (default: ${DEFAULT-VALUE}).")
    List<Integer> batches;

    @Option(names = "--prompt-tokens", defaultValue = "128", description = "Prompt length (default: ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--new-tokens", defaultValue = "32", description = "Tokens generated per request (default: ${DEFAULT-VALUE}).")
    int newTokens;

    @Option(names = "--prefill", paramLabel = "TOKENS",
            description = "Also time the prefill of one prompt of this many tokens (median of 3), per model.")
    Integer prefillTokens;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the results as JSON to FILE.")
    Path json;

    @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (default: ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--threads", description = "CPU backend threads (default: all cores).")
    Integer threads;

    @Override
    public Integer call() throws Exception {
        logging.apply();
        if (shapes.isEmpty() && models.isEmpty()) {
            throw new ParameterException(spec.commandLine(), "give --shape and/or --model");
        }
        int maxBatch = batches.stream().max(Integer::compare).orElse(1);
        if (prefillTokens != null && prefillTokens < 1) {
            throw new ParameterException(spec.commandLine(), "--prefill must be >= 1, got " + prefillTokens);
        }
        int longest = Math.max(promptTokens, prefillTokens != null ? prefillTokens : 0);
        EngineOptions options = new EngineOptions(backend, 64, 0.8, 0,
                threads != null ? threads : Runtime.getRuntime().availableProcessors(),
                new EngineConfig(Math.max(2048, longest), Math.max(maxBatch, 1), 1024));
        // Room for every sequence of the largest batch, and no more: the KV cache is not what is measured.
        int blocks = Math.max(maxBatch * ((promptTokens + newTokens + 63) / 64), (longest + 1 + 63) / 64) + 8;
        List<EngineBenchmark.Result> results = new ArrayList<>();
        Map<String, Double> prefills = new LinkedHashMap<>();
        PrintWriter out = spec.commandLine().getOut();
        Path scratch = Files.createTempDirectory("distserve-bench");
        try {
            List<Path> folders = new ArrayList<>(models);
            for (String s : shapes) {
                ModelShape shape = ModelShape.fromName(s);
                Path dir = scratch.resolve(s);
                new CheckpointGenerator(shape, 1, shape == ModelShape.TINY ? null : tokenizer).writeTo(dir);
                folders.add(dir);
            }
            for (Path folder : folders) {
                try (LoadedModel model = LoadedModel.load(folder, options.withMaxBlocks(blocks))) {
                    EngineBenchmark.run(model, new EngineBenchmark.Case(model.name(), 1, 16, 4), 0); // JIT warm-up
                    for (int batch : batches) {
                        EngineBenchmark.Result r = EngineBenchmark.run(model,
                                new EngineBenchmark.Case(model.name(), batch, promptTokens, newTokens), batch);
                        results.add(r);
                        out.println(EngineBenchmark.markdownTable(List.of(r)).lines().skip(2).findFirst().orElse(""));
                        out.flush();
                    }
                    if (prefillTokens != null) {
                        double seconds = EngineBenchmark.prefillSeconds(model, prefillTokens, 3, 7);
                        prefills.put(model.name(), seconds);
                        out.printf(Locale.ROOT, "prefill %s %d tokens (one prompt): %.1f ms%n", model.name(),
                                prefillTokens, seconds * 1000);
                        out.flush();
                    }
                }
            }
        } finally {
            deleteRecursively(scratch);
        }
        out.println();
        out.println(EngineBenchmark.markdownTable(results));
        if (json != null) {
            writeJson(results, prefills);
        }
        out.printf("backend %s, %d threads, %d cores, %s %s%n", backend, options.threads(),
                Runtime.getRuntime().availableProcessors(), System.getProperty("java.vm.name"),
                System.getProperty("java.version"));
        return 0;
    }

    private void writeJson(List<EngineBenchmark.Result> results, Map<String, Double> prefills) throws IOException {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        root.put("backend", backend);
        ArrayNode decode = root.putArray("decode");
        for (EngineBenchmark.Result r : results) {
            decode.addObject().put("model", r.c().model()).put("batch", r.c().batch())
                    .put("prompt", r.c().promptTokens()).put("new", r.c().newTokens())
                    .put("prefill_tok_s", r.prefillTokensPerSecond()).put("tok_s", r.decodeTokensPerSecond())
                    .put("ms_per_step", r.msPerDecodeStep());
        }
        ArrayNode prefill = root.putArray("prefill");
        prefills.forEach((name, seconds) -> prefill.addObject().put("model", name).put("tokens", prefillTokens)
                .put("seconds", seconds));
        mapper.writerWithDefaultPrettyPrinter().writeValue(json.toFile(), root);
    }

    private static void deleteRecursively(Path dir) throws IOException {
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
