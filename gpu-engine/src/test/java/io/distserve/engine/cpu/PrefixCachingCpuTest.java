package io.distserve.engine.cpu;

import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.engine.testing.PrefixCachingScenario;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Prefix caching on the real CPU backend: at temperature 0 the tokens are those of an engine without the cache. */
class PrefixCachingCpuTest {

    @TempDir
    Path dir;

    @Test
    void cachedAndUncachedEnginesGiveTheSameTokens() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 3, null).withThreads(1).writeTo(model);
        EngineOptions options = new EngineOptions("cpu", 16, 0.8, 128, 2, EngineConfig.defaults());
        try (LoadedModel cached = LoadedModel.load(model, options);
             LoadedModel uncached = LoadedModel.load(model, options.withPrefixCaching(false))) {
            PrefixCachingScenario.run(cached, uncached, 16, 64, 400);
        }
    }
}
