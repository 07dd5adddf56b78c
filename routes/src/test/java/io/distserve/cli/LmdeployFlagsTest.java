package io.distserve.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.app.EngineServerSettings;
import io.distserve.app.ProxyServerSettings;
import io.distserve.engine.cuda.CudaDevice;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * The commands of LMDeploy's DistServe guide, pasted with {@code lmdeploy} replaced by {@code distserve}: every one
 * parses into settings that serve (no server started), and enum values are accepted in any case.
 */
class LmdeployFlagsTest {

    @TempDir
    Path model;

    /** Parses like the real CLI (case-insensitive enums) and returns the innermost command. */
    private static Object parsed(String... args) {
        CommandLine.ParseResult r = DistServeCli.newCommandLine().parseArgs(args);
        while (r.hasSubcommand()) {
            r = r.subcommand();
        }
        return r.commandSpec().userObject();
    }

    private EngineServerSettings engine(String... flags) {
        String[] args = new String[flags.length + 3];
        args[0] = "serve";
        args[1] = "api_server";
        args[2] = model.toString();
        System.arraycopy(flags, 0, args, 3, flags.length);
        return ((ApiServerCommand) parsed(args)).settings();
    }

    @Test
    void kvAwareIsARoutingStrategyBesideLmdeploysThree() {
        assertThat(proxy("--routing-strategy", "kv_aware").routingStrategy()).isEqualTo("kv_aware");
        assertThat(proxy("--routing-strategy", "KV_AWARE").routingStrategy()).isEqualTo("kv_aware");
    }

    private ProxyServerSettings proxy(String... flags) {
        String[] args = new String[flags.length + 2];
        args[0] = "serve";
        args[1] = "proxy";
        System.arraycopy(flags, 0, args, 2, flags.length);
        return ((ProxyCommand) parsed(args)).settings();
    }

    @Test
    void lmdeployEngineCommandsPaste() {
        String gpuOrCpu = CudaDevice.isAvailable() ? "cuda" : "cpu";
        for (String transferEngine : new String[] {"Mooncake", "DLSlime", "dlslime", "MOONCAKE"}) {
            EngineServerSettings s = engine("--role", "Prefill", "--proxy-url", "http://127.0.0.1:8000",
                    "--backend", "pytorch", "--migration-backend", transferEngine);
            assertThat(s.migrationBackend()).as("our transfer engine offers every transport").isEqualTo("auto");
            assertThat(s.engine().backend()).as("pytorch: the GPU engine where a GPU is").isEqualTo(gpuOrCpu);
        }
        assertThat(engine("--role", "decode", "--backend", "TurboMind").engine().backend()).isEqualTo(gpuOrCpu);
        assertThat(engine("--backend", "CPU").engine().backend()).isEqualTo("cpu");
        assertThat(engine().migrationBackend()).isEqualTo("auto");
        assertThat(engine("--migration-backend", "TCP").migrationBackend()).isEqualTo("tcp");
        assertThat(engine("--backend", "cuda", "--migration-backend", "NVLink").migrationBackend())
                .isEqualTo("nvlink");
    }

    @Test
    void engineTransportsThatCannotWorkAreOneLineUsageErrors() {
        assertThatThrownBy(() -> engine("--backend", "cpu", "--migration-backend", "nvlink"))
                .isInstanceOf(CommandLine.ParameterException.class).hasMessageContaining("needs --backend cuda");
        // rdma parses; where it cannot run the engine stops at start with the reason (EngineNodeProcessIT)
        assertThat(engine("--migration-backend", "rdma").migrationBackend()).isEqualTo("rdma");
        assertThatThrownBy(() -> engine("--migration-backend", "nixl"))
                .isInstanceOf(CommandLine.ParameterException.class).hasMessageContaining("nixl");
    }

    @Test
    void lmdeployProxyCommandsPaste() {
        ProxyServerSettings s = proxy("--server-name", "0.0.0.0", "--server-port", "8000", "--routing-strategy",
                "min_expected_latency", "--serving-strategy", "DistServe", "--migration-protocol", "NVLink",
                "--log-level", "INFO");
        assertThat(s.migrationProtocol()).isEqualTo("NVLINK");
        assertThat(s.servingStrategy()).isEqualTo("DistServe");
        assertThat(proxy("--migration-protocol", "NVLINK").migrationProtocol()).isEqualTo("NVLINK");
        assertThat(proxy("--migration-protocol", "tcp").migrationProtocol()).isEqualTo("TCP");
        assertThat(proxy("--migration-protocol", "RDMA", "--link-type", "RoCE", "--disable-gdr").migrationProtocol())
                .isEqualTo("RDMA");
        assertThat(proxy("--link-type", "ib").migrationProtocol()).isEqualTo("AUTO");
        assertThat(proxy().migrationProtocol()).as("default").isEqualTo("AUTO");
        assertThat(proxy("--serving-strategy", "distserve", "--routing-strategy", "RANDOM").routingStrategy())
                .isEqualTo("random");
    }

    @Test
    void badEnumValuesEndInOneLineAndExitCode2() {
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        CommandLine cl = DistServeCli.newCommandLine();
        cl.setErr(new java.io.PrintWriter(err, true));
        assertThat(cl.execute("serve", "proxy", "--migration-protocol", "udp")).isEqualTo(2);
        assertThat(err.toString().strip()).doesNotContain("\n").contains("--migration-protocol")
                .contains("AUTO, TCP, NVLINK, RDMA");
        err.reset();
        assertThat(cl.execute("serve", "proxy", "--link-type", "ethernet")).isEqualTo(2);
        assertThat(err.toString()).contains("RoCE, IB");
    }
}
