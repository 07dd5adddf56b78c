package io.distserve.registry.consul;

import java.net.URI;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * Which Consul agent and service a node uses: {@code --consul-url}, {@code --consul-service} and
 * {@code --consul-token}.
 *
 * @param url     the agent's HTTP API, e.g. {@code http://127.0.0.1:8500}
 * @param service the Consul service name that engines register under and proxies discover (default
 *                {@value #DEFAULT_SERVICE})
 * @param token   the ACL token sent with every request, or null when the agent has no ACLs
 */
public record ConsulTarget(URI url, String service, String token) {

    public static final String DEFAULT_SERVICE = "distserve";

    /** Consul's rule for names that must also be valid DNS labels (it warns otherwise); we refuse them. */
    private static final Pattern SERVICE_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9-]{0,62}");

    public ConsulTarget {
        Objects.requireNonNull(url, "url");
        if (!("http".equals(url.getScheme()) || "https".equals(url.getScheme())) || url.getHost() == null) {
            throw new IllegalArgumentException("the Consul URL must be http(s)://host:port, got " + url);
        }
        service = service == null || service.isBlank() ? DEFAULT_SERVICE : service.trim();
        if (!SERVICE_NAME.matcher(service).matches()) {
            throw new IllegalArgumentException("the Consul service name must be letters, digits and dashes"
                    + " (a DNS label), got '" + service + "'");
        }
        token = token == null || token.isBlank() ? null : token;
    }

    /** Parses {@code --consul-url} (a trailing slash is dropped). */
    public static ConsulTarget parse(String url, String service, String token) {
        String trimmed = url.trim();
        while (trimmed.endsWith("/")) {
            trimmed = trimmed.substring(0, trimmed.length() - 1);
        }
        URI uri;
        try {
            uri = URI.create(trimmed);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the Consul URL must be http(s)://host:port, got " + url, e);
        }
        return new ConsulTarget(uri, service, token);
    }

    /** The URL without a trailing slash, as the Consul client wants it. */
    public String baseUrl() {
        String s = url.toString();
        return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
    }

    @Override
    public String toString() {
        // never the token
        return "ConsulTarget[url=" + url + ", service=" + service + ", token=" + (token == null ? "none" : "***") + "]";
    }
}
