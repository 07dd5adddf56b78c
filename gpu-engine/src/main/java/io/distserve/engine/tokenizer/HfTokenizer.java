package io.distserve.engine.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A Hugging Face tokenizer.json run by the Rust {@code tokenizers} library through DJL's JNI binding.
 *
 * <p>Encoding adds no special tokens (chat templates write them into the text) and neither truncates nor pads.
 * Added tokens found in the text ({@code <|im_end|>}, {@code <think>}) encode to their single id, as in Hugging Face.
 * Decoding with {@code skipSpecialTokens} drops the ids that tokenizer.json marks special and those that
 * tokenizer_config.json's added_tokens_decoder marks special (transformers treats both as special).
 *
 * <p>Offline: DJL loads the native library from its own jar (extracting it once into its cache directory,
 * {@code ~/.djl.ai/tokenizers} or {@code $DJL_CACHE_DIR}) and reads tokenizer.json from disk; nothing is
 * downloaded. The one network access DJL makes on its own is a telemetry "call home" on the first tokenizer it
 * creates (it probes the EC2 metadata address 169.254.169.254 with one-second timeouts, and on EC2 posts to S3);
 * {@link #load} opts out through DJL's documented switch, the {@code OPT_OUT_TRACKING} system property, unless the
 * environment or the command line already decided, and it turns on DJL's offline mode ({@code ai.djl.offline}), so
 * that on a GPU machine DJL does not go looking for a CUDA build of the library on the internet.
 *
 * <p>Thread-safe: the native tokenizer is immutable and used concurrently; a read-write lock keeps
 * {@link #close()} from freeing it under a running call.
 */
public final class HfTokenizer implements TextTokenizer {

    public static final String FILE_NAME = "tokenizer.json";

    private static final String DJL_TELEMETRY_OPT_OUT = "OPT_OUT_TRACKING";
    private static final String DJL_OFFLINE = "ai.djl.offline";
    private static final String DJL_OFFLINE_ENV = "DJL_OFFLINE";

    private final Path file;
    private final HuggingFaceTokenizer tokenizer;
    private final TokenizerVocabulary vocabulary;
    private final Set<Integer> specialTokenIds;
    private final ReadWriteLock lifecycle = new ReentrantReadWriteLock();
    private boolean closed;

    private HfTokenizer(Path file, HuggingFaceTokenizer tokenizer, TokenizerVocabulary vocabulary,
                        Set<Integer> specialTokenIds) {
        this.file = file;
        this.tokenizer = tokenizer;
        this.vocabulary = vocabulary;
        this.specialTokenIds = specialTokenIds;
    }

    /**
     * Loads {@code modelDir/tokenizer.json}, taking extra special tokens from {@code modelDir/tokenizer_config.json}
     * when there is one. {@code modelDir} may also be the tokenizer.json file itself.
     */
    public static HfTokenizer load(Path modelDir) {
        if (Files.isRegularFile(modelDir)) {
            return load(modelDir, TokenizerConfig.absent());
        }
        Path config = modelDir.resolve(TokenizerConfig.FILE_NAME);
        return load(modelDir.resolve(FILE_NAME),
                Files.exists(config) ? TokenizerConfig.read(config) : TokenizerConfig.absent());
    }

    /** Loads a tokenizer.json; {@code config} contributes the special tokens of its added_tokens_decoder. */
    public static HfTokenizer load(Path tokenizerJson, TokenizerConfig config) {
        TokenizerVocabulary vocabulary = TokenizerVocabulary.read(tokenizerJson);
        Set<Integer> special = new HashSet<>(vocabulary.specialTokenIds());
        special.addAll(config.specialAddedTokens().keySet());
        optOutOfDjlTelemetry();
        Map<String, String> options = Map.of(
                "addSpecialTokens", "false",
                "truncation", "false",
                "padding", "false",
                "withOverflowingTokens", "false");
        try {
            HuggingFaceTokenizer tokenizer = HuggingFaceTokenizer.newInstance(tokenizerJson, options);
            return new HfTokenizer(tokenizerJson, tokenizer, vocabulary, Set.copyOf(special));
        } catch (IOException e) {
            throw new InvalidTokenizerFileException(tokenizerJson, "cannot read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            // the native library rejects JSON that parses but is not a tokenizer it understands
            throw new InvalidTokenizerFileException(tokenizerJson, "not a tokenizer the tokenizers library can load: "
                    + e.getMessage(), e);
        }
    }

    private static void optOutOfDjlTelemetry() {
        if (System.getenv(DJL_TELEMETRY_OPT_OUT) == null && System.getProperty(DJL_TELEMETRY_OPT_OUT) == null) {
            System.setProperty(DJL_TELEMETRY_OPT_OUT, "true");
        }
        // On a machine with a CUDA GPU, DJL picks a CUDA build of the tokenizer library, which is not in the jar,
        // and downloads it (seen failing on the GPU machines, which reach no network). Tokenizing needs no GPU:
        // offline mode makes DJL take the CPU build shipped in the jar and never download anything.
        if (System.getenv(DJL_OFFLINE_ENV) == null && System.getProperty(DJL_OFFLINE) == null) {
            System.setProperty(DJL_OFFLINE, "true");
        }
    }

    @Override
    public int[] encode(String text) {
        lifecycle.readLock().lock();
        try {
            ensureOpen();
            // Straight to the JNI calls rather than tokenizer.encode(...): DJL's Encoding also copies out tokens,
            // offsets, word ids and masks, which doubles the cost of a long prompt and is never used here.
            long encoding = TokenizersLibrary.LIB.encode(tokenizer.getHandle(), text, false);
            long[] ids;
            try {
                ids = TokenizersLibrary.LIB.getTokenIds(encoding);
            } finally {
                TokenizersLibrary.LIB.deleteEncoding(encoding);
            }
            int[] out = new int[ids.length];
            for (int i = 0; i < ids.length; i++) {
                out[i] = (int) ids[i];
            }
            return out;
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] wide = new long[ids.length];
        int n = 0;
        for (int id : ids) {
            if (id < 0) {
                throw new IllegalArgumentException("token id " + id + " is negative");
            }
            if (id >= vocabulary.size()) {
                // A model's embedding is often padded past the tokenizer (Qwen3: 151,936 rows, 151,669 ids) and a
                // sampler can land there; Hugging Face decodes such ids as nothing, and so do we.
                continue;
            }
            if (!(skipSpecialTokens && specialTokenIds.contains(id))) {
                wide[n++] = id;
            }
        }
        if (n == 0) {
            return "";
        }
        long[] kept = n == wide.length ? wide : java.util.Arrays.copyOf(wide, n);
        lifecycle.readLock().lock();
        try {
            ensureOpen();
            return tokenizer.decode(kept, skipSpecialTokens);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    @Override
    public int vocabSize() {
        return vocabulary.size();
    }

    @Override
    public Set<Integer> specialTokenIds() {
        return specialTokenIds;
    }

    @Override
    public int tokenId(String token) {
        return vocabulary.tokenIds().getOrDefault(token, -1);
    }

    /** The tokenizer.json this was loaded from. */
    public Path file() {
        return file;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("tokenizer " + file + " is closed");
        }
    }

    @Override
    public void close() {
        lifecycle.writeLock().lock();
        try {
            if (!closed) {
                closed = true;
                tokenizer.close();
            }
        } finally {
            lifecycle.writeLock().unlock();
        }
    }
}
