package io.distserve.registry;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.Objects;

/**
 * Probes {@code GET {url}/health} and expects 200. Unlike LMDeploy's proxy, it has connect and request timeouts
 * (a node that accepts the connection and never answers fails the probe instead of hanging it), and it sends
 * {@code Authorization: Bearer <key>} when the proxy has API keys, so nodes started with {@code --api-keys} are
 * not reported down for refusing an anonymous probe.
 */
public final class HttpHealthProbe implements HealthProbe {

    private final HttpClient client;
    private final Duration timeout;
    private final String bearerKey;

    /**
     * @param timeout   the limit for connecting and, separately, for the answer's status line and headers
     * @param bearerKey the API key to send (the proxy's first {@code --api-keys} entry), or null for none
     */
    public HttpHealthProbe(Duration timeout, String bearerKey) {
        this.timeout = Objects.requireNonNull(timeout, "timeout");
        if (timeout.isZero() || timeout.isNegative()) {
            throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        }
        if (bearerKey != null && bearerKey.isBlank()) {
            throw new IllegalArgumentException("bearerKey must not be blank; pass null for no key");
        }
        this.bearerKey = bearerKey;
        // HTTP/1.1: Java's default offers an h2c upgrade that some Python servers answer badly.
        this.client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(timeout)
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    @Override
    public ProbeResult probe(String nodeUrl) throws InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(nodeUrl + "/health"))
                .timeout(timeout)
                .GET();
        if (bearerKey != null) {
            request.header("Authorization", "Bearer " + bearerKey);
        }
        try {
            HttpResponse<Void> response = client.send(request.build(), HttpResponse.BodyHandlers.discarding());
            return response.statusCode() == 200
                    ? ProbeResult.ok()
                    : ProbeResult.failed("GET /health answered HTTP " + response.statusCode());
        } catch (HttpTimeoutException e) {
            return ProbeResult.failed("GET /health timed out after " + timeout.toMillis() + " ms");
        } catch (IOException e) {
            String message = e.getMessage();
            return ProbeResult.failed("GET /health failed: " + e.getClass().getSimpleName()
                    + (message == null || message.isBlank() ? "" : ": " + message));
        }
    }
}
