package io.distserve.cli;

import io.distserve.app.ProxyApplication;
import io.distserve.app.ProxyServerSettings;
import io.distserve.processors.disagg.RdmaSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code distserve serve proxy ...}: flags as LMDeploy's {@code lmdeploy serve proxy}. */
@Command(name = "proxy", mixinStandardHelpOptions = true,
        description = "The proxy in front of Hybrid, Prefill and Decode engine nodes, as a Camel application.")
final class ProxyCommand implements Callable<Integer> {

    enum ServingStrategy { Hybrid, DistServe }

    enum RoutingStrategy { random, min_expected_latency, min_observed_latency, kv_aware }

    enum MigrationProtocol { AUTO, TCP, NVLINK, RDMA }

    enum LinkType { RoCE, IB }


    @Spec
    CommandSpec spec;

    @Mixin
    LoggingOptions logging;

    @Option(names = "--server-name", defaultValue = "0.0.0.0", description = "Bind address (default: ${DEFAULT-VALUE}).")
    String serverName;

    @Option(names = "--server-port", defaultValue = "8000", description = "Port (default: ${DEFAULT-VALUE}).")
    int serverPort;

    @Option(names = "--routing-strategy", defaultValue = "min_expected_latency",
            description = "random, min_expected_latency, min_observed_latency, or kv_aware: where most of the "
                    + "prompt's prefix is already cached, against load (default: ${DEFAULT-VALUE}).")
    RoutingStrategy routingStrategy;

    @Option(names = "--serving-strategy", defaultValue = "Hybrid",
            description = "Hybrid or DistServe (default: ${DEFAULT-VALUE}).")
    ServingStrategy servingStrategy;

    @Option(names = "--migration-protocol", defaultValue = "AUTO",
            description = "KV transport of each (prefill, decode) pair: AUTO (NVLink when both engines offer it and "
                    + "run on one host, else TCP), or forced TCP, NVLINK or RDMA; any case (default: ${DEFAULT-VALUE}).")
    MigrationProtocol migrationProtocol;

    @Option(names = "--link-type", description = "RDMA link type, RoCE or IB (LMDeploy's flag): sent to the prefill "
            + "engine of each pair that migrates over rdma, whose endpoint carries it.")
    LinkType linkType;

    @Option(names = "--disable-gdr", description = "No GPUDirect RDMA (LMDeploy's flag): pairs over rdma keep the NIC "
            + "off GPU memory, staging GPU pools through pinned host memory on both sides.")
    boolean disableGdr;

    @Option(names = "--api-keys", arity = "1..*", paramLabel = "KEY",
            description = "Require 'Authorization: Bearer KEY' from clients; the first key is also sent to the nodes.")
    List<String> apiKeys = new ArrayList<>();

    @Option(names = "--node-table", paramLabel = "FILE",
            description = "Where the node table is kept across restarts (default: ~/.distserve/proxy-PORT-nodes.json).")
    Path nodeTable;

    @Mixin
    ConsulOptions consul;

    @Option(names = "--routes", paramLabel = "PATTERN", description = "Camel route files that replace the built-in proxy routes.")
    String routes;

    @Option(names = "--extra-routes", paramLabel = "PATTERN", description = "Camel route files added beside the built-in ones.")
    String extraRoutes;

    @Option(names = "--properties", paramLabel = "FILE", description = "An application.properties overriding the defaults.")
    Path properties;

    @Override
    public Integer call() throws Exception {
        logging.apply();
        return new ProxyApplication(settings()).run();
    }

    ProxyServerSettings settings() {
        if (serverPort < 1 || serverPort > 65535) {
            throw new ParameterException(spec.commandLine(), "--server-port must be in [1, 65535]");
        }

        if (properties != null && !Files.isRegularFile(properties)) {
            throw new ParameterException(spec.commandLine(), "--properties " + properties + " is not a file");
        }
        Path table = nodeTable != null ? nodeTable
                : Path.of(System.getProperty("user.home"), ".distserve", "proxy-" + serverPort + "-nodes.json");
        return new ProxyServerSettings(serverName, serverPort, servingStrategy.name(), routingStrategy.name(),
                migrationProtocol.name(), apiKeys, table, routes, extraRoutes, properties, consul.target(spec),
                new RdmaSettings(linkType == null ? "RoCE" : linkType.name(), disableGdr));
    }
}
