package io.distserve.cli;

import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.GeneratedCheckpoint;
import io.distserve.engine.model.ModelShape;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code distserve model generate}: a Hugging Face folder with seeded random bf16 weights. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Write a Hugging Face model folder with seeded random bf16 weights (transformers loads it "
                + "unchanged). Same shape and seed: byte-identical files.")
final class ModelGenerateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    LoggingOptions logging;

    @Option(names = "--shape", required = true, paramLabel = "SHAPE",
            description = "tiny, qwen3-0.6b or qwen3-8b.")
    String shape;

    @Option(names = "--seed", defaultValue = "0", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--tokenizer", paramLabel = "DIR",
            description = "Folder with tokenizer.json and tokenizer_config.json to copy (required except for tiny, "
                    + "which otherwise gets a built-in byte-level tokenizer).")
    Path tokenizer;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output folder (absent or empty).")
    Path out;

    @Option(names = "--threads", description = "Writer threads (default: all cores).")
    Integer threads;

    @Override
    public Integer call() {
        logging.apply();
        ModelShape modelShape;
        try {
            modelShape = ModelShape.fromName(shape);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
        if (tokenizer != null && !Files.isDirectory(tokenizer)) {
            throw new ParameterException(spec.commandLine(), "--tokenizer " + tokenizer + " is not a folder");
        }
        CheckpointGenerator generator = new CheckpointGenerator(modelShape, seed, tokenizer);
        if (threads != null) {
            generator = generator.withThreads(threads);
        }
        GeneratedCheckpoint result = generator.writeTo(out);
        spec.commandLine().getOut().println(result.summary());
        return 0;
    }
}
