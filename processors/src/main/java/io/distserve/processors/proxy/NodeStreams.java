package io.distserve.processors.proxy;

import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientRequest;
import io.vertx.core.http.HttpConnection;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.PoolOptions;
import io.vertx.core.http.RequestOptions;
import java.net.URI;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The proxy's non-blocking calls to nodes: Vert.x's HttpClient, created on the Vert.x instance that serves the proxy's
 * HTTP, with kept-alive connections per node. A request sent from an event loop has its callbacks on that same
 * event loop, so a request forwarded there (ForwardHybrid) is answered without any thread hand-off. Each call carries
 * the proxy's API key, as {@link NodeClient}'s do.
 */
public final class NodeStreams {

    private static final Logger LOG = LoggerFactory.getLogger(NodeStreams.class);

    /**
     * Concurrent requests per node. HTTP/1.1 has one request per connection at a time and a streamed answer holds its
     * connection to the end, so this bounds the streams one node serves through this proxy at once (beyond it they
     * wait for a connection); as many as the worker threads that bounded them before.
     */
    static final int MAX_CONNECTIONS_PER_NODE = 512;
    /** Idle kept-alive connections are closed after this (nodes close theirs too: uvicorn after 5 s). */
    static final int KEEP_ALIVE_SECONDS = 30;

    private final Duration connectTimeout;
    private final String authorization;
    private final Supplier<Vertx> fallbackVertx;
    private final Map<Vertx, HttpClient> clients = new ConcurrentHashMap<>();
    private final Map<String, Target> targets = new ConcurrentHashMap<>();
    /** Connections that carried a request already: a failure on one before any answer may be a stale keep-alive. */
    private final Set<HttpConnection> used = ConcurrentHashMap.newKeySet();

    /**
     * @param fallbackVertx the Vert.x instance to use when a call is made off a Vert.x thread (the HTTP server's)
     */
    public NodeStreams(Duration connectTimeout, String apiKey, Supplier<Vertx> fallbackVertx) {
        this.connectTimeout = Objects.requireNonNull(connectTimeout, "connectTimeout");
        this.authorization = apiKey == null ? null : "Bearer " + apiKey;
        this.fallbackVertx = Objects.requireNonNull(fallbackVertx, "fallbackVertx");
    }

    /** A node's address, parsed once; {@code base}: the path of its URL, before the endpoint's. */
    private record Target(String host, int port, boolean ssl, String base) {
    }

    /**
     * Opens a POST to {@code nodeUrl + path} with the JSON headers; the caller sends the body. {@code idleTimeout}:
     * the longest wait for the answer's first byte and between its later bytes.
     */
    Future<HttpClientRequest> post(String nodeUrl, String path, Duration idleTimeout) {
        Target t = targets.computeIfAbsent(nodeUrl, NodeStreams::target);
        RequestOptions options = new RequestOptions()
                .setMethod(HttpMethod.POST)
                .setHost(t.host())
                .setPort(t.port())
                .setSsl(t.ssl())
                .setURI(t.base() + path)
                .setIdleTimeout(Math.max(1, idleTimeout.toMillis()))
                .putHeader(HttpHeaders.CONTENT_TYPE, "application/json");
        if (authorization != null) {
            options.putHeader(HttpHeaders.AUTHORIZATION, authorization);
        }
        return client().request(options);
    }

    /** Whether {@code request}'s connection carried an earlier request (marks it as used for the next ones). */
    boolean reused(HttpClientRequest request) {
        HttpConnection connection = request.connection();
        if (connection == null) {
            return false;
        }
        if (used.add(connection)) {
            connection.closeHandler(v -> used.remove(connection));
            // a reset or a timeout reaches the request it broke (ForwardHybrid handles it there); without a handler
            // here Vert.x would also log each one at ERROR
            connection.exceptionHandler(e -> LOG.debug("connection to a node failed: {}", e.toString()));
            return false;
        }
        return true;
    }

    private HttpClient client() {
        Context context = Vertx.currentContext();
        Vertx vertx = context != null ? context.owner() : fallbackVertx.get();
        return clients.computeIfAbsent(vertx, v -> v.createHttpClient(new HttpClientOptions()
                .setConnectTimeout((int) Math.min(Integer.MAX_VALUE, Math.max(1, connectTimeout.toMillis())))
                .setKeepAlive(true)
                .setKeepAliveTimeout(KEEP_ALIVE_SECONDS)
                .setTcpNoDelay(true)
                .setVerifyHost(true),
                new PoolOptions().setHttp1MaxSize(MAX_CONNECTIONS_PER_NODE)));
    }

    private static Target target(String nodeUrl) {
        URI uri = URI.create(nodeUrl);
        boolean ssl = "https".equalsIgnoreCase(uri.getScheme());
        if (!ssl && !"http".equalsIgnoreCase(uri.getScheme())) {
            throw new IllegalArgumentException("only http:// and https:// node URLs are supported, not " + nodeUrl);
        }
        int port = uri.getPort() < 0 ? (ssl ? 443 : 80) : uri.getPort();
        String host = uri.getHost();
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1); // an IPv6 literal
        }
        return new Target(host, port, ssl, uri.getRawPath() == null ? "" : uri.getRawPath());
    }
}
