package io.distserve.app;

import io.distserve.processors.disagg.RdmaSettings;
import io.distserve.registry.consul.ConsulTarget;
import java.nio.file.Path;
import java.util.List;

/**
 * Everything {@code serve proxy} was told, validated by the command.
 *
 * @param servingStrategy   Hybrid or DistServe
 * @param routingStrategy   random, min_expected_latency or min_observed_latency
 * @param migrationProtocol AUTO, TCP, NVLINK or RDMA: the KV transport of each (prefill, decode) pair
 *                          ({@link io.distserve.processors.proxy.MigrationProtocolChoice})
 * @param nodeTable         where the node table is kept across restarts
 * @param consul            the Consul agent and service whose passing instances join the node table
 *                          ({@code --consul-url}), or null: the table holds only nodes added through the API
 * @param rdma              {@code --link-type} and {@code --disable-gdr}, sent to engines for pairs over rdma
 */
public record ProxyServerSettings(String host, int port, String servingStrategy, String routingStrategy,
                                  String migrationProtocol, List<String> apiKeys, Path nodeTable, String routes,
                                  String extraRoutes, Path propertiesFile, ConsulTarget consul, RdmaSettings rdma) {

    public static final String DEFAULT_ROUTES = "classpath:camel/proxy.camel.yaml";

    public ProxyServerSettings {
        apiKeys = List.copyOf(apiKeys);
        rdma = rdma == null ? RdmaSettings.DEFAULTS : rdma;
    }

    /** Settings with the default RDMA settings (RoCE, GPUDirect where the engines have it). */
    public ProxyServerSettings(String host, int port, String servingStrategy, String routingStrategy,
                               String migrationProtocol, List<String> apiKeys, Path nodeTable, String routes,
                               String extraRoutes, Path propertiesFile, ConsulTarget consul) {
        this(host, port, servingStrategy, routingStrategy, migrationProtocol, apiKeys, nodeTable, routes, extraRoutes,
                propertiesFile, consul, null);
    }

    /** Settings without Consul. */
    public ProxyServerSettings(String host, int port, String servingStrategy, String routingStrategy,
                               String migrationProtocol, List<String> apiKeys, Path nodeTable, String routes,
                               String extraRoutes, Path propertiesFile) {
        this(host, port, servingStrategy, routingStrategy, migrationProtocol, apiKeys, nodeTable, routes, extraRoutes,
                propertiesFile, null, null);
    }
}
