package io.distserve.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The file side of the decode-GEMM tuning cache (the picks themselves need a GPU: CudaSelfCheck). */
class DecodeTuningCacheTest {

    @TempDir
    Path dir;

    @AfterEach
    void clearProperty() {
        System.clearProperty(DecodeTuningCache.PROPERTY);
    }

    @Test
    void theFirstEngineTunesAndLaterOnesAdoptItsPicks() throws Exception {
        Path file = dir.resolve("sub/picks.tsv");
        System.setProperty(DecodeTuningCache.PROPERTY, file.toString());
        DecodeTuningCache cache = DecodeTuningCache.forDevice("NVIDIA H200", 132, 0xabcL);
        AtomicInteger tunings = new AtomicInteger();
        Map<String, String> first = cache.withPicks(cached -> {
            assertThat(cached).isEmpty();
            tunings.incrementAndGet();
            Map<String, String> m = new TreeMap<>();
            m.put(CudaKernels.pickKey(0, 4096, 4096, false), "dual:0");
            m.put(CudaKernels.pickKey(3, 4096, 4096, false), "pipe:2");
            return m;
        });
        assertThat(Files.readString(file)).contains("0\t4096\t4096\tbf16\tdual:0").contains("pipe:2");
        Map<String, String> second = DecodeTuningCache.forDevice("NVIDIA H200", 132, 0xabcL).withPicks(cached -> {
            assertThat(cached).isEqualTo(first); // adopted, not tuned again
            return cached;
        });
        assertThat(second).isEqualTo(first);
        assertThat(tunings.get()).isEqualTo(1);
    }

    @Test
    void theDefaultFileIsPerGpuModelAndKernelBuildAndOffTurnsItOff() {
        String home = System.getProperty("user.home");
        System.setProperty("user.home", dir.toString());
        try {
            DecodeTuningCache a = DecodeTuningCache.forDevice("NVIDIA H200", 132, 0x1L);
            DecodeTuningCache b = DecodeTuningCache.forDevice("NVIDIA H100 80GB HBM3", 132, 0x1L);
            DecodeTuningCache c = DecodeTuningCache.forDevice("NVIDIA H200", 132, 0x2L);
            assertThat(a.file().getFileName().toString()).isEqualTo("decode-gemm-NVIDIA_H200-132sm-1.tsv");
            assertThat(a.file()).isNotEqualTo(b.file()).isNotEqualTo(c.file());
            assertThat(a.file().startsWith(dir.resolve(".cache/distserve"))).isTrue();
        } finally {
            System.setProperty("user.home", home);
        }
        System.setProperty(DecodeTuningCache.PROPERTY, "off");
        assertThat(DecodeTuningCache.forDevice("NVIDIA H200", 132, 1)).isNull();
    }

    @Test
    void anUnwritablePlaceCostsTheCacheNotTheEngine() throws Exception {
        Path blocker = dir.resolve("file");
        Files.writeString(blocker, "x");
        System.setProperty(DecodeTuningCache.PROPERTY, blocker.resolve("under-a-file/picks.tsv").toString());
        Map<String, String> picks = DecodeTuningCache.forDevice("g", 1, 1).withPicks(cached -> Map.of("k", "v"));
        assertThat(picks).containsEntry("k", "v");
    }
}
