package io.distserve.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.app.EngineServerSettings;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code serve api_server} flags become the settings the server runs with (no server started). */
class ApiServerCommandTest {

    @TempDir
    Path model;

    private EngineServerSettings parse(String... args) {
        ApiServerCommand command = new ApiServerCommand();
        new CommandLine(command).parseArgs(args);
        return command.settings();
    }

    @Test
    void queueBatchThreadsKeysAndCacheFlags() {
        EngineServerSettings s = parse(model.toString(), "--server-port", "24000", "--max-queue", "3",
                "--max-batch-size", "2", "--threads", "1", "--api-keys", "k1", "k2", "--cache-block-seq-len", "32",
                "--cache-max-entry-count", "0.05", "--max-prefill-token-num", "512");
        assertThat(s.port()).isEqualTo(24000);
        assertThat(s.engine().engine().maxWaiting()).isEqualTo(3);
        assertThat(s.engine().engine().maxRunning()).isEqualTo(2);
        assertThat(s.engine().engine().maxBatchedTokens()).isEqualTo(512);
        assertThat(s.engine().threads()).isEqualTo(1);
        assertThat(s.engine().blockSize()).isEqualTo(32);
        assertThat(s.engine().cacheFraction()).isEqualTo(0.05);
        assertThat(s.apiKeys()).containsExactly("k1", "k2");
    }

    @Test
    void defaults() {
        EngineServerSettings s = parse(model.toString());
        assertThat(s.port()).isEqualTo(23333);
        assertThat(s.engine().engine().maxWaiting()).isEqualTo(1024);
        assertThat(s.apiKeys()).isEmpty();
        assertThat(s.proxyUrl()).isNull();
        assertThat(s.engine().prefixCaching()).as("prefix caching is on by default").isTrue();
    }

    @Test
    void prefixCachingFlagsInVllmAndLmdeploySpelling() {
        assertThat(parse(model.toString(), "--enable-prefix-caching").engine().prefixCaching()).isTrue();
        assertThat(parse(model.toString(), "--no-enable-prefix-caching").engine().prefixCaching()).isFalse();
    }

    @Test
    void badValuesAreParameterErrors() {
        assertThatThrownBy(() -> parse(model.toString(), "--max-queue", "0"))
                .isInstanceOf(CommandLine.ParameterException.class).hasMessageContaining("maxWaiting");
        assertThatThrownBy(() -> parse(model.toString(), "--server-port", "70000"))
                .isInstanceOf(CommandLine.ParameterException.class);
        assertThatThrownBy(() -> parse(model.resolve("missing").toString()))
                .isInstanceOf(CommandLine.ParameterException.class).hasMessageContaining("is not a folder");
    }
}
