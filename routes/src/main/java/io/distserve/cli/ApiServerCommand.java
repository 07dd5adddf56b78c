package io.distserve.cli;

import io.distserve.app.EngineApplication;
import io.distserve.app.EngineServerSettings;
import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.registry.NodeRole;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code distserve serve api_server MODEL_DIR ...}: an engine node, flags as LMDeploy's. */
@Command(name = "api_server", mixinStandardHelpOptions = true,
        description = "Serve a model with the OpenAI API (/v1/completions, /v1/chat/completions, /v1/models), "
                + "/health and /metrics, as a Camel application.")
final class ApiServerCommand implements Callable<Integer> {

    /** Ours (cuda, cpu), and LMDeploy's engine names (pytorch, turbomind): the GPU engine where a GPU is. */
    enum Backend { cuda, cpu, pytorch, turbomind }

    /** Ours (auto: every transport that works here; or one), and LMDeploy's transfer engines (as auto). */
    enum MigrationBackend { auto, tcp, nvlink, rdma, DLSlime, Mooncake }

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ApiServerCommand.class);

    @Spec
    CommandSpec spec;

    @Mixin
    LoggingOptions logging;

    @Parameters(index = "0", paramLabel = "MODEL_PATH", description = "Hugging Face model folder.")
    Path modelPath;

    @Option(names = "--model-name", description = "The model name clients use (default: the folder's name).")
    String modelName;

    @Option(names = "--server-name", defaultValue = "0.0.0.0", description = "Bind address (default: ${DEFAULT-VALUE}).")
    String serverName;

    @Option(names = "--server-port", defaultValue = "23333", description = "Port (default: ${DEFAULT-VALUE}).")
    int serverPort;

    @Option(names = "--role", defaultValue = "Hybrid",
            description = "Hybrid, Prefill or Decode (default: ${DEFAULT-VALUE}).")
    String role;

    @Option(names = "--proxy-url", paramLabel = "URL", description = "Register with this proxy (and again periodically).")
    String proxyUrl;

    @Mixin
    ConsulOptions consul;

    @Option(names = "--backend", defaultValue = "cpu",
            description = "cpu or cuda; LMDeploy's pytorch and turbomind mean cuda where a GPU is, else cpu "
                    + "(default: ${DEFAULT-VALUE}).")
    Backend backend;

    @Option(names = "--migration-backend", defaultValue = "auto",
            description = "KV transports this engine offers: auto (every one that works here: nvlink and tcp for "
                    + "cuda, tcp for cpu), or only tcp, nvlink or rdma; LMDeploy's DLSlime and Mooncake mean auto. "
                    + "The proxy's --migration-protocol picks one per pair (default: ${DEFAULT-VALUE}).")
    MigrationBackend migrationBackend;

    @Option(names = "--migration-port", defaultValue = "0",
            description = "Port of the KV migration endpoint; 0 picks a free one (default: ${DEFAULT-VALUE}).")
    int migrationPort;

    @Option(names = "--kv-lease-seconds", defaultValue = "60",
            description = "Prefill role: seconds KV blocks are held for a decode engine to pull (default: ${DEFAULT-VALUE}).")
    int leaseSeconds;

    @Option(names = "--cache-block-seq-len", defaultValue = "64",
            description = "Tokens per KV cache block (default: ${DEFAULT-VALUE}).")
    int cacheBlockSeqLen;

    @Option(names = "--cache-max-entry-count", defaultValue = "0.8",
            description = "Fraction of free memory for the KV cache, in (0, 1] (default: ${DEFAULT-VALUE}). CPU "
                    + "backend: of the JVM's direct-memory budget (-XX:MaxDirectMemorySize, by default -Xmx).")
    double cacheMaxEntryCount;

    @Option(names = "--max-batch-size", defaultValue = "256",
            description = "Sequences generated at once at most (default: ${DEFAULT-VALUE}).")
    int maxBatchSize;

    @Option(names = "--max-prefill-token-num", defaultValue = "2048",
            description = "Tokens computed per engine step at most; longer prompts are prefilled in chunks "
                    + "(default: ${DEFAULT-VALUE}).")
    int maxPrefillTokens;

    @Option(names = "--max-queue", defaultValue = "1024",
            description = "Requests waiting at most; more get HTTP 429 (default: ${DEFAULT-VALUE}).")
    int maxQueue;

    @Option(names = "--enable-prefix-caching", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Reuse the KV cache of repeated prompt prefixes (system prompts, earlier turns); "
                    + "--no-enable-prefix-caching turns it off (default: on).")
    boolean enablePrefixCaching = true;

    @Option(names = "--threads", description = "CPU backend compute threads (default: all cores).")
    Integer threads;

    @Option(names = "--api-keys", arity = "1..*", paramLabel = "KEY",
            description = "Require 'Authorization: Bearer KEY' with one of these keys (all routes but /health).")
    List<String> apiKeys = new ArrayList<>();

    @Option(names = "--routes", paramLabel = "PATTERN",
            description = "Camel route files that replace the built-in engine routes (e.g. file:my.camel.yaml).")
    String routes;

    @Option(names = "--extra-routes", paramLabel = "PATTERN",
            description = "Camel route files added beside the built-in ones.")
    String extraRoutes;

    @Option(names = "--properties", paramLabel = "FILE",
            description = "An application.properties whose settings override the defaults.")
    Path properties;

    /** cuda or cpu: LMDeploy's pytorch and turbomind become the GPU engine where a GPU is, said in one line. */
    private String engineBackend() {
        if (backend == Backend.cuda || backend == Backend.cpu) {
            return backend.name();
        }
        String why = io.distserve.engine.cuda.CudaDevice.unavailableReason();
        if (why == null) {
            LOG.info("--backend {}: LMDeploy's engine name; this engine runs the CUDA backend (a GPU is here)",
                    backend);
            return "cuda";
        }
        LOG.info("--backend {}: LMDeploy's engine name; no usable GPU here ({}), so this engine runs the CPU backend",
                backend, why);
        return "cpu";
    }

    @Override
    public Integer call() throws Exception {
        logging.apply();
        return new EngineApplication(settings()).run();
    }

    EngineServerSettings settings() {
        NodeRole nodeRole;
        try {
            nodeRole = NodeRole.parse(role);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), "--role: " + e.getMessage());
        }
        String engineBackend = engineBackend();
        String transports = switch (migrationBackend) {
            case DLSlime, Mooncake -> {
                LOG.info("--migration-backend {}: LMDeploy's transfer engine maps to ours, offering every KV transport "
                        + "that works here; the proxy's --migration-protocol picks one per pair", migrationBackend);
                yield "auto";
            }
            case nvlink -> {
                if (!engineBackend.equals("cuda")) {
                    throw new ParameterException(spec.commandLine(), "--migration-backend nvlink moves GPU memory; "
                            + "it needs --backend cuda");
                }
                yield "nvlink";
            }
            default -> migrationBackend.name();
        };
        if (!Files.isDirectory(modelPath)) {
            throw new ParameterException(spec.commandLine(), "MODEL_PATH " + modelPath + " is not a folder");
        }
        if (serverPort < 1 || serverPort > 65535) {
            throw new ParameterException(spec.commandLine(), "--server-port must be in [1, 65535]");
        }
        URI proxy = null;
        if (proxyUrl != null) {
            try {
                proxy = URI.create(proxyUrl.endsWith("/") ? proxyUrl : proxyUrl + "/");
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), "--proxy-url: " + e.getMessage());
            }
            if (!("http".equals(proxy.getScheme()) || "https".equals(proxy.getScheme())) || proxy.getHost() == null) {
                throw new ParameterException(spec.commandLine(), "--proxy-url must be http(s)://host:port, got " + proxyUrl);
            }
        }
        if (migrationPort < 0 || migrationPort > 65535) {
            throw new ParameterException(spec.commandLine(), "--migration-port must be in [0, 65535]");
        }
        if (leaseSeconds < 1) {
            throw new ParameterException(spec.commandLine(), "--kv-lease-seconds must be >= 1");
        }
        if (properties != null && !Files.isRegularFile(properties)) {
            throw new ParameterException(spec.commandLine(), "--properties " + properties + " is not a file");
        }
        EngineOptions engine;
        try {
            engine = new EngineOptions(engineBackend, cacheBlockSeqLen, cacheMaxEntryCount, 0,
                    threads != null ? threads : Math.max(1, Runtime.getRuntime().availableProcessors()),
                    new EngineConfig(maxPrefillTokens, maxBatchSize, maxQueue), enablePrefixCaching);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
        return new EngineServerSettings(modelPath, modelName, serverName, serverPort, nodeRole, proxy, apiKeys,
                engine, routes, extraRoutes, properties, transports, migrationPort,
                java.time.Duration.ofSeconds(leaseSeconds), consul.target(spec));
    }
}
