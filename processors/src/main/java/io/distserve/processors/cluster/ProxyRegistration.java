package io.distserve.processors.cluster;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An engine node's registration with a proxy ({@code --proxy-url}): {@code POST /nodes/add} at start, retried with
 * back-off until the proxy answers, then repeated periodically so that a proxy that restarted (or lost the node)
 * learns it back; {@code POST /nodes/remove} at shutdown. LMDeploy registers once and never again.
 */
public final class ProxyRegistration implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(ProxyRegistration.class);
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(5);
    private static final long MAX_BACKOFF_MILLIS = 30_000;

    private final URI proxy;
    private final String nodeUrl;
    private final String role;
    private final List<String> models;
    private final String apiKey;
    private final long intervalMillis;
    private final ObjectMapper json;
    private final HttpClient http;
    private final ScheduledExecutorService timer;
    private volatile boolean registered;
    private long backoffMillis = 500;

    /**
     * @param apiKey the bearer key for the proxy, or null
     */
    public ProxyRegistration(URI proxy, String nodeUrl, String role, List<String> models, String apiKey,
                             Duration interval, ObjectMapper json) {
        this.proxy = proxy;
        this.nodeUrl = nodeUrl;
        this.role = role;
        this.models = List.copyOf(models);
        this.apiKey = apiKey;
        this.intervalMillis = interval.toMillis();
        this.json = json;
        this.http = HttpClient.newBuilder().connectTimeout(REQUEST_TIMEOUT).build();
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "proxy-registration");
            t.setDaemon(true);
            return t;
        });
    }

    public void start() {
        timer.execute(this::attempt);
    }

    public boolean registered() {
        return registered;
    }

    private void attempt() {
        long next;
        try {
            post("/nodes/add", addBody());
            if (!registered) {
                LOG.info("registered {} ({}) with proxy {}", nodeUrl, role, proxy);
            }
            registered = true;
            backoffMillis = 500;
            next = intervalMillis;
        } catch (Exception e) {
            if (registered) {
                LOG.warn("proxy {} did not take the re-registration: {}", proxy, e.getMessage());
            } else {
                LOG.warn("proxy {} not reachable yet ({}); retrying in {} ms", proxy, e.getMessage(), backoffMillis);
            }
            registered = false;
            next = backoffMillis;
            backoffMillis = Math.min(backoffMillis * 2, MAX_BACKOFF_MILLIS);
        }
        if (!timer.isShutdown()) {
            timer.schedule(this::attempt, next, TimeUnit.MILLISECONDS);
        }
    }

    private ObjectNode addBody() {
        ObjectNode body = json.createObjectNode();
        body.put("url", nodeUrl);
        ObjectNode status = body.putObject("status");
        status.put("role", role);
        models.forEach(status.putArray("models")::add);
        return body;
    }

    private void post(String path, ObjectNode body) throws Exception {
        HttpRequest.Builder req = HttpRequest.newBuilder(proxy.resolve(path))
                .timeout(REQUEST_TIMEOUT)
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json.writeValueAsString(body)));
        if (apiKey != null) {
            req.header("Authorization", "Bearer " + apiKey);
        }
        HttpResponse<String> resp = http.send(req.build(), HttpResponse.BodyHandlers.ofString());
        if (resp.statusCode() / 100 != 2) {
            throw new IllegalStateException("HTTP " + resp.statusCode() + " from " + path + ": " + resp.body());
        }
    }

    /** Stops re-registering and tells the proxy the node is leaving (best effort, bounded by the timeout). */
    @Override
    public void close() {
        timer.shutdownNow();
        try {
            timer.awaitTermination(REQUEST_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            ObjectNode body = json.createObjectNode();
            body.put("url", nodeUrl);
            post("/nodes/remove", body);
            LOG.info("removed {} from proxy {}", nodeUrl, proxy);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            LOG.warn("could not remove {} from proxy {}: {}", nodeUrl, proxy, e.getMessage());
        }
    }
}
