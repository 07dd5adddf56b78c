package io.distserve.engine.cuda;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The decode-GEMM tuner's picks kept on disk per GPU model, SM count and kernel build, shared by every engine of the
 * host: the tuner picks by timing, and two processes can pick different kernels when two candidates are within the
 * noise of each other. Different kernels sum in different orders, so a Prefill and a Decode engine would no longer
 * compute bit for bit what a Hybrid engine computes (DistServe's text must equal Hybrid's at temperature 0). With
 * the cache the first engine tunes and the others adopt its picks (and start ~1 s sooner). The file is read, tuned
 * and written under a lock, so engines started at the same moment still agree.
 *
 * <p>{@value #PROPERTY}: the file, or {@code off}; default {@code ~/.cache/distserve/decode-gemm-<gpu>-<SMs>sm-
 * <fatbin crc>.tsv}. Lines: {@code bucket<TAB>N<TAB>K<TAB>f32|bf16<TAB>variant:param}.
 */
final class DecodeTuningCache {

    static final String PROPERTY = "distserve.cuda.tuningCache";

    private static final Logger LOG = LoggerFactory.getLogger(DecodeTuningCache.class);

    private final Path file;

    private DecodeTuningCache(Path file) {
        this.file = file;
    }

    /** The cache of this device and build; null when turned off. */
    static DecodeTuningCache forDevice(String deviceName, int smCount, long fatbinCrc) {
        String p = System.getProperty(PROPERTY);
        if ("off".equalsIgnoreCase(p)) {
            return null;
        }
        if (p != null && !p.isBlank()) {
            return new DecodeTuningCache(Path.of(p));
        }
        String gpu = deviceName.replaceAll("[^A-Za-z0-9]+", "_");
        return new DecodeTuningCache(Path.of(System.getProperty("user.home"), ".cache", "distserve",
                "decode-gemm-" + gpu + "-" + smCount + "sm-" + Long.toHexString(fatbinCrc) + ".tsv"));
    }

    Path file() {
        return file;
    }

    /**
     * Runs {@code tune} on the cached picks (key -> pick; empty when there are none) under the cache's lock and writes
     * back the picks it returns. Any I/O failure costs the cache, never the engine: {@code tune} then runs on no
     * picks and its result is not kept.
     */
    Map<String, String> withPicks(Function<Map<String, String>, Map<String, String>> tune) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            Path lockFile = file.resolveSibling(file.getFileName() + ".lock");
            try (FileChannel ch = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                 FileLock ignored = ch.lock()) {
                Map<String, String> cached = read();
                Map<String, String> picks = tune.apply(cached);
                if (!picks.equals(cached)) {
                    write(picks);
                }
                return picks;
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof RuntimeException r && !(e instanceof java.nio.channels.OverlappingFileLockException)
                    && !(e instanceof SecurityException)) {
                throw r; // the tuner's own failure
            }
            LOG.warn("decode GEMM tuning cache {} unusable ({}); tuning without it", file, e.toString());
            return tune.apply(Map.of());
        }
    }

    private Map<String, String> read() throws IOException {
        Map<String, String> out = new TreeMap<>();
        if (!Files.isRegularFile(file)) {
            return out;
        }
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            int tab = line.lastIndexOf('\t');
            if (tab > 0 && !line.startsWith("#")) {
                out.put(line.substring(0, tab), line.substring(tab + 1));
            }
        }
        return out;
    }

    private void write(Map<String, String> picks) throws IOException {
        StringBuilder b = new StringBuilder("# decode GEMM picks (bucket, N, K, output) -> kernel; delete to retune\n");
        new TreeMap<>(picks).forEach((k, v) -> b.append(k).append('\t').append(v).append('\n'));
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(tmp, b, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
