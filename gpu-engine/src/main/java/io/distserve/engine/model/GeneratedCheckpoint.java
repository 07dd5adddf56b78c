package io.distserve.engine.model;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * What {@link CheckpointGenerator#writeTo} produced.
 *
 * @param folder     the Hugging Face model folder
 * @param config     its configuration, as {@code config.json} states it
 * @param parameters number of weights (the tied LM head counted once)
 * @param bytes      size of the safetensors files together
 * @param files      every file written, relative to {@code folder}
 * @param elapsed    wall time
 */
public record GeneratedCheckpoint(Path folder, ModelConfig config, long parameters, long bytes, List<String> files,
                                  Duration elapsed) {

    public GeneratedCheckpoint {
        files = List.copyOf(files);
    }

    /** One line for a log or a console. */
    public String summary() {
        double seconds = elapsed.toMillis() / 1000.0;
        return String.format("%s: %,d parameters, %,d bytes of safetensors in %d file(s), %.1f s (%.0f MB/s)",
                folder, parameters, bytes, files.stream().filter(f -> f.endsWith(".safetensors")).count(), seconds,
                seconds > 0 ? bytes / 1e6 / seconds : 0.0);
    }
}
