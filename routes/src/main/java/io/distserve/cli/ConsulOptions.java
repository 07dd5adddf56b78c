package io.distserve.cli;

import io.distserve.registry.consul.ConsulTarget;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;

/** {@code --consul-url}, {@code --consul-service}, {@code --consul-token}: shared by the engine and the proxy. */
final class ConsulOptions {

    static final String DEFAULT_SERVICE = "distserve";

    @Option(names = "--consul-url", paramLabel = "URL",
            description = "A Consul agent (e.g. http://127.0.0.1:8500): engines register there with a health check of "
                    + "/health; proxies discover the engines there.")
    String url;

    @Option(names = "--consul-service", paramLabel = "NAME",
            description = "The Consul service name (default: " + DEFAULT_SERVICE + ").")
    String service;

    @Option(names = "--consul-token", paramLabel = "TOKEN", description = "Consul ACL token, if the agent has ACLs.")
    String token;

    /** The Consul to use, or null without --consul-url; the other two flags alone are a usage error. */
    ConsulTarget target(CommandSpec spec) {
        if (url == null) {
            if (service != null || token != null) {
                throw new ParameterException(spec.commandLine(),
                        (service != null ? "--consul-service" : "--consul-token") + " needs --consul-url");
            }
            return null;
        }
        try {
            return ConsulTarget.parse(url, service != null ? service : DEFAULT_SERVICE, token);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), "--consul-url/--consul-service: " + e.getMessage());
        }
    }
}
