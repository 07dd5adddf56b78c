package io.distserve.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.app.EngineServerSettings;
import io.distserve.app.ProxyServerSettings;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code --consul-url}, {@code --consul-service}, {@code --consul-token} on both servers (no server started). */
class ConsulFlagsTest {

    @TempDir
    Path model;

    private EngineServerSettings engine(String... args) {
        ApiServerCommand command = new ApiServerCommand();
        new CommandLine(command).parseArgs(args);
        return command.settings();
    }

    private ProxyServerSettings proxy(String... args) {
        ProxyCommand command = new ProxyCommand();
        new CommandLine(command).parseArgs(args);
        return command.settings();
    }

    @Test
    void withoutConsulUrlNothingChanges() {
        assertThat(engine(model.toString()).consul()).isNull();
        assertThat(engine(model.toString()).towards()).isNull();
        assertThat(proxy().consul()).isNull();
    }

    @Test
    void engineFlags() {
        EngineServerSettings s = engine(model.toString(), "--role", "Decode", "--consul-url", "http://127.0.0.1:8500/",
                "--consul-service", "llm", "--consul-token", "tok");
        assertThat(s.consul().baseUrl()).isEqualTo("http://127.0.0.1:8500");
        assertThat(s.consul().service()).isEqualTo("llm");
        assertThat(s.consul().token()).isEqualTo("tok");
        // the advertised address is chosen towards Consul when there is no proxy URL
        assertThat(s.towards().toString()).isEqualTo("http://127.0.0.1:8500");
    }

    @Test
    void proxyFlagsWithDefaultServiceName() {
        ProxyServerSettings s = proxy("--serving-strategy", "DistServe", "--consul-url", "http://10.0.0.5:8500");
        assertThat(s.consul().baseUrl()).isEqualTo("http://10.0.0.5:8500");
        assertThat(s.consul().service()).isEqualTo("distserve");
        assertThat(s.consul().token()).isNull();
    }

    @Test
    void consulServiceOrTokenWithoutConsulUrlIsAUsageError() {
        assertThatThrownBy(() -> proxy("--consul-service", "llm"))
                .isInstanceOf(picocli.CommandLine.ParameterException.class)
                .hasMessage("--consul-service needs --consul-url");
        assertThatThrownBy(() -> engine(model.toString(), "--consul-token", "t"))
                .isInstanceOf(picocli.CommandLine.ParameterException.class)
                .hasMessage("--consul-token needs --consul-url");
    }

    @Test
    void badValuesAreOneLineParameterErrors() {
        assertThatThrownBy(() -> proxy("--consul-url", "127.0.0.1:8500"))
                .isInstanceOf(CommandLine.ParameterException.class).hasMessageContaining("http(s)://host:port");
        assertThatThrownBy(() -> engine(model.toString(), "--consul-url", "http://127.0.0.1:8500",
                "--consul-service", "not a name")).isInstanceOf(CommandLine.ParameterException.class)
                .hasMessageContaining("DNS label");
    }
}
