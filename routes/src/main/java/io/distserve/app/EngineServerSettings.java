package io.distserve.app;

import io.distserve.engine.EngineOptions;
import io.distserve.registry.NodeRole;
import io.distserve.registry.consul.ConsulTarget;
import java.net.URI;
import java.nio.file.Path;
import java.util.List;

/**
 * Everything {@code serve api_server} was told, validated by the command.
 *
 * @param modelDir     the Hugging Face folder
 * @param modelName    the name clients use (default: the folder's name)
 * @param host         bind address
 * @param port         port (0: any free port)
 * @param role         Hybrid, Prefill or Decode
 * @param proxyUrl     proxy to register with, or null
 * @param apiKeys      keys clients must present (empty: none)
 * @param engine       backend and KV cache settings
 * @param routes       Camel route files (replacing the built-in engine routes when given)
 * @param extraRoutes  Camel route files added beside them
 * @param propertiesFile an extra application.properties, or null
 * @param migrationBackend the KV transports to offer: auto (every one that works here) or one name
 * @param migrationPort  port of the KV transfer endpoint (0: any free port)
 * @param leaseTtl       how long a Prefill engine holds KV blocks nobody has pulled
 * @param consul         the Consul agent and service to register with ({@code --consul-url}), or null
 */
public record EngineServerSettings(Path modelDir, String modelName, String host, int port, NodeRole role,
                                   URI proxyUrl, List<String> apiKeys, EngineOptions engine, String routes,
                                   String extraRoutes, Path propertiesFile, String migrationBackend,
                                   int migrationPort, java.time.Duration leaseTtl, ConsulTarget consul) {

    public static final String DEFAULT_ROUTES = "classpath:camel/engine.camel.yaml";

    public EngineServerSettings {
        apiKeys = List.copyOf(apiKeys);
    }

    /** Settings without Consul. */
    public EngineServerSettings(Path modelDir, String modelName, String host, int port, NodeRole role, URI proxyUrl,
                                List<String> apiKeys, EngineOptions engine, String routes, String extraRoutes,
                                Path propertiesFile, String migrationBackend, int migrationPort,
                                java.time.Duration leaseTtl) {
        this(modelDir, modelName, host, port, role, proxyUrl, apiKeys, engine, routes, extraRoutes, propertiesFile,
                migrationBackend, migrationPort, leaseTtl, null);
    }

    /** Where other machines are reached from: the proxy if there is one, else the Consul agent, else nothing. */
    public URI towards() {
        return proxyUrl != null ? proxyUrl : consul != null ? consul.url() : null;
    }
}
