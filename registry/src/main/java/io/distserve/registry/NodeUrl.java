package io.distserve.registry;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Locale;

/**
 * Normalizes and validates node URLs, so that "HTTP://Node:23333/" and "http://node:23333" are the same table
 * entry and a typo is refused at registration rather than failing every request routed to it.
 */
public final class NodeUrl {

    private NodeUrl() {
    }

    /**
     * Returns the canonical form of a node's base URL: lower-case scheme and host, explicit port, no trailing
     * slash. Only http and https with a host and a port are accepted; user info, query and fragment are refused
     * because the proxy appends endpoint paths to this URL.
     *
     * @throws IllegalArgumentException with a message fit for a 400 response
     */
    public static String normalize(String raw) {
        if (raw == null || raw.isBlank()) {
            throw new IllegalArgumentException("A node url is required, e.g. http://10.0.0.5:23333");
        }
        String text = raw.trim();
        URI uri;
        try {
            uri = new URI(text);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("Invalid node url '" + text + "': " + e.getReason());
        }
        String scheme = uri.getScheme() == null ? null : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!"http".equals(scheme) && !"https".equals(scheme)) {
            throw new IllegalArgumentException("Invalid node url '" + text + "': the scheme must be http or https");
        }
        if (uri.getHost() == null) {
            throw new IllegalArgumentException("Invalid node url '" + text
                    + "': it needs a host and a port, e.g. http://10.0.0.5:23333");
        }
        if (uri.getPort() < 1 || uri.getPort() > 65535) {
            throw new IllegalArgumentException("Invalid node url '" + text
                    + "': it needs an explicit port between 1 and 65535, e.g. http://10.0.0.5:23333");
        }
        if (uri.getRawUserInfo() != null) {
            throw new IllegalArgumentException("Invalid node url '" + text + "': user info is not allowed");
        }
        if (uri.getRawQuery() != null || uri.getRawFragment() != null) {
            throw new IllegalArgumentException("Invalid node url '" + text
                    + "': a query or fragment is not allowed in a base url");
        }
        String path = uri.getRawPath() == null ? "" : uri.getRawPath();
        while (path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        return scheme + "://" + uri.getHost().toLowerCase(Locale.ROOT) + ":" + uri.getPort() + path;
    }
}
