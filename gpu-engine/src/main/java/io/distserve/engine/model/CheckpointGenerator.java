package io.distserve.engine.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.safetensors.DType;
import io.distserve.engine.safetensors.FloatCodec;
import io.distserve.engine.safetensors.SafetensorsWriter;
import io.distserve.engine.safetensors.TensorSpec;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes a seeded random-weight Qwen3 checkpoint as a Hugging Face folder ({@code config.json},
 * {@code generation_config.json}, safetensors, tokenizer files) that {@code transformers} loads with
 * {@code Qwen3ForCausalLM} and that {@link Checkpoint#open} validates.
 *
 * <h2>Weight scales</h2>
 * The aim is a model that is random but not degenerate: logits at any position should spread with a standard
 * deviation of about {@value WeightInit#LOGIT_STD}, so that greedy decoding is not decided by bf16 ties and depends
 * on the prompt.
 * <ul>
 *   <li>Linear weights {@code [out, in]}: N(0, 1/sqrt(in)). Every linear layer reads an RMS-normalised (or
 *       unit-scale) input, so its outputs also have unit scale: q, k, v, the attention output, the gate and up
 *       projections, and each block's contribution to the residual stream are all O(1).</li>
 *   <li>RMSNorm weights (input, post-attention, final, and Qwen3's per-head q/k norms): 1 + N(0, 0.1), close to the
 *       identity but not exactly (a backend that forgets a norm weight shows it).</li>
 *   <li>LM head (untied) and tied embedding: N(0, 3/sqrt(hidden)). After the final RMSNorm the hidden state has
 *       RMS about 1, so a logit, a dot product of hidden with one row, has standard deviation
 *       3/sqrt(hidden) * sqrt(hidden) = 3. With 151,936 rows the top logit sits about 4.5 deviations out, on
 *       average about 0.6 above the runner-up, ten times the bf16 spacing there (0.0625), so ties are rare.
 *       Measured with a NumPy forward pass on random prompts: logit std 2.9-3.2 for TINY, 3.0 for qwen3-0.6b.</li>
 *   <li>Untied embedding: N(0, 1); its scale is immaterial to the first layer (input RMSNorm) and keeps the
 *       token's own identity visible in the residual stream.</li>
 * </ul>
 *
 * <h2>Determinism</h2>
 * Each tensor is cut into chunks of {@value #CHUNK_ELEMENTS} elements; chunk {@code c} of tensor {@code t} is drawn
 * from a {@link SplittableRandom} seeded by a hash of (seed, t's name, c). Chunks are filled by a pool of threads and
 * written at their own offsets, so the bytes depend only on the seed and shape, never on the thread count or the
 * order in which chunks finish. Changing {@link #CHUNK_ELEMENTS} changes every checkpoint.
 *
 * <h2>Files</h2>
 * One {@code model.safetensors} when the weights fit in {@value #DEFAULT_MAX_SHARD_BYTES} bytes, otherwise
 * {@code model-0000k-of-0000n.safetensors} shards and {@code model.safetensors.index.json}, as
 * {@code save_pretrained} does.
 */
public final class CheckpointGenerator {

    static final int CHUNK_ELEMENTS = 1 << 20;
    static final long DEFAULT_MAX_SHARD_BYTES = 4L << 30;

    /** Tokenizer files copied from a tokenizer folder when present. */
    private static final List<String> TOKENIZER_FILES = List.of("tokenizer.json", "tokenizer_config.json",
            "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja");
    private static final String TRANSFORMERS_VERSION = "4.51.0";

    private static final Logger LOG = LoggerFactory.getLogger(CheckpointGenerator.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ModelShape shape;
    private final long seed;
    private final Path tokenizerDir;
    private final int threads;
    private final long maxShardBytes;

    /**
     * @param shape        the architecture
     * @param seed         weights are a pure function of (shape, seed)
     * @param tokenizerDir a Hugging Face tokenizer folder to copy, or null for the built-in byte-level one (TINY
     *                     only)
     * @throws IllegalArgumentException if a shape other than TINY comes without a tokenizer
     */
    public CheckpointGenerator(ModelShape shape, long seed, Path tokenizerDir) {
        this(shape, seed, tokenizerDir, Runtime.getRuntime().availableProcessors(), DEFAULT_MAX_SHARD_BYTES);
    }

    private CheckpointGenerator(ModelShape shape, long seed, Path tokenizerDir, int threads, long maxShardBytes) {
        if (tokenizerDir == null && shape.requiresTokenizer()) {
            throw new IllegalArgumentException(shape.cliName() + " needs a real tokenizer: pass --tokenizer DIR "
                    + "(a Hugging Face tokenizer folder, e.g. the Qwen3 one in shared/models/qwen3-tokenizer)");
        }
        if (threads < 1 || maxShardBytes < 1) {
            throw new IllegalArgumentException("threads " + threads + ", max shard bytes " + maxShardBytes);
        }
        this.shape = shape;
        this.seed = seed;
        this.tokenizerDir = tokenizerDir;
        this.threads = threads;
        this.maxShardBytes = maxShardBytes;
    }

    /** The same generator with another number of writer threads (the output does not change). */
    public CheckpointGenerator withThreads(int threadCount) {
        return new CheckpointGenerator(shape, seed, tokenizerDir, threadCount, maxShardBytes);
    }

    /** Smaller shards, so that tests can produce a sharded folder from a tiny model. */
    CheckpointGenerator withMaxShardBytes(long bytes) {
        return new CheckpointGenerator(shape, seed, tokenizerDir, threads, bytes);
    }

    /** The configuration that {@link #writeTo} will write (reads the tokenizer folder, if any). */
    public ModelConfig config() {
        return shape.config(tokenizerIds());
    }

    private TokenizerIds tokenizerIds() {
        return tokenizerDir == null ? TokenizerIds.of(new BuiltInTokenizer()) : TokenizerIds.read(tokenizerDir);
    }

    /**
     * Writes the checkpoint into {@code outDir}, which must be absent or empty, then opens it once to validate.
     *
     * @throws CheckpointException if the folder is not empty, the tokenizer folder is unusable or writing fails
     */
    public GeneratedCheckpoint writeTo(Path outDir) {
        long started = System.nanoTime();
        TokenizerIds tokenizer = tokenizerIds();
        ModelConfig config = shape.config(tokenizer);
        try {
            prepareEmptyFolder(outDir);
            List<String> files = new ArrayList<>();
            files.addAll(writeTokenizer(outDir, config));
            writeJson(outDir.resolve(ModelConfigLoader.CONFIG_FILE), configJson(config, tokenizer));
            writeJson(outDir.resolve(ModelConfigLoader.GENERATION_CONFIG_FILE), generationConfigJson(tokenizer));
            files.add(ModelConfigLoader.CONFIG_FILE);
            files.add(ModelConfigLoader.GENERATION_CONFIG_FILE);
            List<ExpectedTensor> tensors = ModelTensors.expected(config);
            long bytes = writeWeights(outDir, config, plan(tensors), files);
            try (Checkpoint check = Checkpoint.open(outDir)) {
                LOG.debug("generated checkpoint {} validates ({} tensors)", outDir, check.tensors().names().size());
            }
            GeneratedCheckpoint result = new GeneratedCheckpoint(outDir, config, ModelTensors.parameterCount(config),
                    bytes, files, Duration.ofNanos(System.nanoTime() - started));
            LOG.info("{}", result.summary());
            return result;
        } catch (IOException e) {
            throw new CheckpointException(outDir + ": cannot write the checkpoint: " + e.getMessage(), e);
        }
    }

    private static void prepareEmptyFolder(Path outDir) throws IOException {
        if (Files.exists(outDir)) {
            if (!Files.isDirectory(outDir)) {
                throw new CheckpointException(outDir + ": exists and is not a folder");
            }
            try (Stream<Path> entries = Files.list(outDir)) {
                if (entries.findAny().isPresent()) {
                    throw new CheckpointException(outDir + ": is not empty; generate into a new or empty folder");
                }
            }
        }
        Files.createDirectories(outDir);
    }

    private List<String> writeTokenizer(Path outDir, ModelConfig config) throws IOException {
        if (tokenizerDir == null) {
            new BuiltInTokenizer().writeTo(outDir, config.maxPositions());
            return List.of("tokenizer.json", "tokenizer_config.json");
        }
        List<String> copied = new ArrayList<>();
        for (String name : TOKENIZER_FILES) {
            Path source = tokenizerDir.resolve(name);
            if (Files.isRegularFile(source)) {
                // Copy the content only: a read-only source must not make the checkpoint's files read-only.
                try (InputStream in = Files.newInputStream(source)) {
                    Files.copy(in, outDir.resolve(name));
                }
                copied.add(name);
            }
        }
        return copied;
    }

    /** Hugging Face's {@code Qwen3Config} fields, in its (alphabetical) order. */
    private ObjectNode configJson(ModelConfig c, TokenizerIds tokenizer) {
        ObjectNode json = JSON.createObjectNode();
        json.putArray("architectures").add("Qwen3ForCausalLM");
        json.put("attention_bias", false);
        json.put("attention_dropout", 0.0);
        json.put("bos_token_id", c.bosTokenId());
        json.put("eos_token_id", tokenizer.eosId());
        json.put("head_dim", c.headDim());
        json.put("hidden_act", "silu");
        json.put("hidden_size", c.hiddenSize());
        json.put("initializer_range", 0.02);
        json.put("intermediate_size", c.intermediateSize());
        json.put("max_position_embeddings", c.maxPositions());
        json.put("max_window_layers", c.numLayers());
        json.put("model_type", "qwen3");
        json.put("num_attention_heads", c.numHeads());
        json.put("num_hidden_layers", c.numLayers());
        json.put("num_key_value_heads", c.numKvHeads());
        json.put("rms_norm_eps", c.rmsNormEps());
        json.putNull("rope_scaling");
        json.put("rope_theta", (long) c.ropeTheta());
        json.putNull("sliding_window");
        json.put("tie_word_embeddings", c.tieWordEmbeddings());
        json.put("torch_dtype", "bfloat16");
        json.put("transformers_version", TRANSFORMERS_VERSION);
        json.put("use_cache", true);
        json.put("use_sliding_window", false);
        json.put("vocab_size", c.vocabSize());
        return json;
    }

    private static ObjectNode generationConfigJson(TokenizerIds tokenizer) {
        ObjectNode json = JSON.createObjectNode();
        json.put("bos_token_id", tokenizer.bosId());
        ArrayNode eos = json.putArray("eos_token_id");
        tokenizer.generationEosIds().forEach(eos::add);
        json.put("pad_token_id", tokenizer.padId());
        json.put("transformers_version", TRANSFORMERS_VERSION);
        return json;
    }

    private static void writeJson(Path file, Object json) throws IOException {
        Files.writeString(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(json) + "\n",
                StandardCharsets.UTF_8);
    }

    /** Tensors grouped into shards of at most {@code maxShardBytes} (a larger tensor gets a shard of its own). */
    private List<List<ExpectedTensor>> plan(List<ExpectedTensor> tensors) {
        List<List<ExpectedTensor>> shards = new ArrayList<>();
        List<ExpectedTensor> current = new ArrayList<>();
        long currentBytes = 0;
        for (ExpectedTensor t : tensors) {
            long bytes = t.elementCount() * DType.BF16.bytes();
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(t);
            currentBytes += bytes;
        }
        shards.add(current);
        return shards;
    }

    private static String shardName(int index, int count) {
        return count == 1 ? FolderTensorStore.SINGLE_FILE
                : String.format("model-%05d-of-%05d.safetensors", index + 1, count);
    }

    /** One chunk of one tensor: the unit of work and of randomness. */
    private record Chunk(SafetensorsWriter writer, ExpectedTensor tensor, WeightInit init, long index) {
    }

    private long writeWeights(Path outDir, ModelConfig config, List<List<ExpectedTensor>> shards, List<String> files)
            throws IOException {
        List<SafetensorsWriter> writers = new ArrayList<>();
        List<Chunk> chunks = new ArrayList<>();
        Map<String, String> weightMap = new TreeMap<>();
        long totalBytes = 0;
        try {
            for (int s = 0; s < shards.size(); s++) {
                String fileName = shardName(s, shards.size());
                List<TensorSpec> specs = shards.get(s).stream()
                        .map(t -> new TensorSpec(t.name(), DType.BF16, t.shape())).toList();
                SafetensorsWriter writer = SafetensorsWriter.create(outDir.resolve(fileName), specs,
                        Map.of("format", "pt"));
                writers.add(writer);
                files.add(fileName);
                for (ExpectedTensor t : shards.get(s)) {
                    weightMap.put(t.name(), fileName);
                    totalBytes += t.elementCount() * DType.BF16.bytes();
                    WeightInit init = WeightInit.forTensor(t, config);
                    long chunkCount = (t.elementCount() + CHUNK_ELEMENTS - 1) / CHUNK_ELEMENTS;
                    for (long c = 0; c < chunkCount; c++) {
                        chunks.add(new Chunk(writer, t, init, c));
                    }
                }
            }
            fillInParallel(chunks, totalBytes);
        } finally {
            closeAll(writers);
        }
        if (shards.size() > 1) {
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", totalBytes);
            ObjectNode map = index.putObject("weight_map");
            weightMap.forEach(map::put);
            writeJson(outDir.resolve(FolderTensorStore.INDEX_FILE), index);
            files.add(FolderTensorStore.INDEX_FILE);
        }
        return writers.stream().mapToLong(SafetensorsWriter::fileSize).sum();
    }

    private static void closeAll(List<SafetensorsWriter> writers) {
        RuntimeException first = null;
        for (SafetensorsWriter w : writers) {
            try {
                w.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    private void fillInParallel(List<Chunk> chunks, long totalBytes) throws IOException {
        AtomicInteger next = new AtomicInteger();
        AtomicLong written = new AtomicLong();
        AtomicInteger reportedTenths = new AtomicInteger();
        long started = System.nanoTime();
        int workers = Math.min(threads, Math.max(1, chunks.size()));
        ExecutorService pool = Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "checkpoint-generator");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Callable<Void>> tasks = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                tasks.add(() -> {
                    ByteBuffer buffer = ByteBuffer.allocateDirect(CHUNK_ELEMENTS * DType.BF16.bytes())
                            .order(ByteOrder.LITTLE_ENDIAN);
                    for (int i = next.getAndIncrement(); i < chunks.size(); i = next.getAndIncrement()) {
                        Chunk chunk = chunks.get(i);
                        int bytes = fill(chunk, buffer);
                        chunk.writer().write(chunk.tensor().name(), chunk.index() * CHUNK_ELEMENTS * 2L, buffer);
                        reportProgress(written.addAndGet(bytes), totalBytes, reportedTenths, started);
                    }
                    return null;
                });
            }
            for (Future<Void> f : pool.invokeAll(tasks)) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error error) {
                throw error;
            }
            throw new IOException("writing weights failed", e.getCause());
        } finally {
            pool.shutdownNow();
        }
    }

    /** Fills {@code buffer} with the chunk's bf16 values, ready to write; returns its byte count. */
    private int fill(Chunk chunk, ByteBuffer buffer) {
        long first = chunk.index() * CHUNK_ELEMENTS;
        int count = (int) Math.min(CHUNK_ELEMENTS, chunk.tensor().elementCount() - first);
        SplittableRandom random = new SplittableRandom(chunkSeed(seed, chunk.tensor().name(), chunk.index()));
        double mean = chunk.init().mean();
        double std = chunk.init().std();
        buffer.clear();
        for (int i = 0; i < count; i++) {
            buffer.putShort(FloatCodec.floatToBf16((float) (mean + std * random.nextGaussian())));
        }
        buffer.flip();
        return count * DType.BF16.bytes();
    }

    private static void reportProgress(long done, long total, AtomicInteger reportedTenths, long started) {
        int tenths = (int) (done * 10 / Math.max(1, total));
        int previous = reportedTenths.get();
        if (tenths > previous && reportedTenths.compareAndSet(previous, tenths)) {
            double seconds = (System.nanoTime() - started) / 1e9;
            LOG.info("weights {}% ({} of {} MB, {} s)", tenths * 10, done >> 20, total >> 20,
                    String.format("%.1f", seconds));
        }
    }

    /** A 64-bit seed for one chunk, well mixed so that neighbouring chunks and similar names are unrelated. */
    static long chunkSeed(long seed, String tensorName, long chunkIndex) {
        long nameHash = 0xcbf29ce484222325L;
        for (byte b : tensorName.getBytes(StandardCharsets.UTF_8)) {
            nameHash = (nameHash ^ (b & 0xFF)) * 0x100000001b3L;
        }
        return mix64(mix64(mix64(seed) ^ nameHash) ^ chunkIndex);
    }

    /** SplitMix64's finaliser. */
    private static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
