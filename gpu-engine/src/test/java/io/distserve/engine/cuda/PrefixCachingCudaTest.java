package io.distserve.engine.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.engine.testing.PrefixCachingScenario;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prefix caching on the CUDA backend (GPU only): cached and uncached engines give the same tokens at temperature 0.
 * The cached run prefills only the tail (a GEMM of fewer rows): this checks that no kernel's result depends on the
 * rows beside it.
 */
class PrefixCachingCudaTest {

    @TempDir
    Path dir;

    @Test
    void cachedAndUncachedEnginesGiveTheSameTokens() throws Exception {
        assumeTrue(CudaDevice.isAvailable(), () -> "CUDA unavailable: " + CudaDevice.unavailableReason());
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 3, null).withThreads(1).writeTo(model);
        EngineOptions options = new EngineOptions("cuda", 64, 0.05, 0, 1, EngineConfig.defaults());
        try (LoadedModel cached = LoadedModel.load(model, options);
             LoadedModel uncached = LoadedModel.load(model, options.withPrefixCaching(false))) {
            PrefixCachingScenario.run(cached, uncached, 64, 256, 400);
        }
    }
}
