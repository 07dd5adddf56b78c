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

    @Test
    void everyKindOfPickRoundTripsThroughTheCacheText() {
        // the first cache lost every shape whose pick was "dual": its param 1 did not survive the text form
        for (CudaKernels.Gemm32Variant v : CudaKernels.Gemm32Variant.values()) {
            for (int param : new int[] {0, 1, 2, 4, 8, 16}) {
                CudaKernels.Gemm32Choice c = new CudaKernels.Gemm32Choice(v, param);
                assertThat(CudaKernels.decodePick(CudaKernels.encodePick(c))).isEqualTo(c);
            }
        }
        assertThat(CudaKernels.decodePick("dual")).isNull();
        assertThat(CudaKernels.decodePick("warp:2")).isNull();
        assertThat(CudaKernels.decodePick("pipe:x")).isNull();
    }
}
