package io.distserve.processors.routing.kv;

import io.distserve.engine.tokenizer.ModelTokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * The tokenizers of the served models, as the engines sent them ({@code GET /distserve/tokenizer}), so that the
 * proxy computes a request's tokens, and so its block keys, exactly as the engines do. Thread-safe; {@link #close()}
 * frees the native tokenizers and their folders.
 */
public final class ProxyTokenizers implements AutoCloseable {

    private record Loaded(ModelTokenizer tokenizer, Path folder) {
    }

    private final ConcurrentHashMap<String, Loaded> byModel = new ConcurrentHashMap<>();

    /**
     * The model's tokenizer; with no model named, the only one if exactly one is known (a request without "model"
     * goes to any node, and the nodes of a proxy usually serve one model).
     */
    public Optional<ModelTokenizer> forModel(String model) {
        if (model == null || model.isBlank()) {
            if (byModel.size() != 1) {
                return Optional.empty();
            }
            return byModel.values().stream().findFirst().map(Loaded::tokenizer);
        }
        Loaded l = byModel.get(model);
        return l == null ? Optional.empty() : Optional.of(l.tokenizer());
    }

    public boolean has(String model) {
        return byModel.containsKey(model);
    }

    /**
     * Loads a model's tokenizer from its files (name to contents, names from {@link ModelTokenizer#FILES} only).
     *
     * @throws RuntimeException when the files do not make a tokenizer (the caller may try another node)
     */
    public void load(String model, Map<String, String> files) {
        Path folder;
        try {
            folder = Files.createTempDirectory("distserve-tokenizer-");
            for (Map.Entry<String, String> f : files.entrySet()) {
                if (!ModelTokenizer.FILES.contains(f.getKey())) {
                    throw new IllegalArgumentException("unexpected tokenizer file '" + f.getKey() + "'");
                }
                Files.writeString(folder.resolve(f.getKey()), f.getValue(), StandardCharsets.UTF_8);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        ModelTokenizer tokenizer;
        try {
            tokenizer = ModelTokenizer.load(folder);
        } catch (RuntimeException e) {
            delete(folder);
            throw e;
        }
        Loaded previous = byModel.putIfAbsent(model, new Loaded(tokenizer, folder));
        if (previous != null) { // loaded concurrently: keep the first
            tokenizer.close();
            delete(folder);
        }
    }

    @Override
    public void close() {
        for (Loaded l : byModel.values()) {
            l.tokenizer().close();
            delete(l.folder());
        }
        byModel.clear();
    }

    private static void delete(Path folder) {
        try (Stream<Path> files = Files.walk(folder)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temp folder left behind
        }
    }
}
