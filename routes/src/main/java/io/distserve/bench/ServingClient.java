package io.distserve.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.PoolOptions;
import io.vertx.core.http.RequestOptions;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The benchmark's client: ONE Vert.x event loop sends every request at its arrival time, reads every stream and
 * timestamps its chunks as they arrive, so the client costs little CPU per token and never blocks a thread per
 * request (its own overhead against a server that answers at once is in it/BENCHMARKS.md). Open loop: a request is
 * sent at its arrival time whatever the others do; with a concurrency cap it waits for a free slot instead.
 */
public final class ServingClient implements AutoCloseable {

    /** A finished run: each request's outcome, in dataset order, and the run's length (first send to last end). */
    public record Run(List<RequestOutcome> outcomes, long durationNanos, int maxInFlight) {
    }

    /** Counts for the progress bar, updated from the event loop. */
    public static final class Progress {
        final AtomicInteger done = new AtomicInteger();
        final AtomicInteger failed = new AtomicInteger();
        final AtomicInteger inFlight = new AtomicInteger();

        public int done() {
            return done.get();
        }

        public int failed() {
            return failed.get();
        }

        public int inFlight() {
            return inFlight.get();
        }
    }

    private final Vertx vertx;
    private final HttpClient http;
    private final URI base;
    private final String apiKey;
    private final Duration requestTimeout;
    private final ObjectMapper json;

    public ServingClient(URI base, String apiKey, int maxConnections, Duration requestTimeout, ObjectMapper json) {
        this.base = base;
        this.apiKey = apiKey;
        this.requestTimeout = requestTimeout;
        this.json = json;
        this.vertx = Vertx.vertx(new VertxOptions().setEventLoopPoolSize(1).setWorkerPoolSize(1)
                .setPreferNativeTransport(true));
        this.http = vertx.createHttpClient(new HttpClientOptions().setKeepAlive(true).setTcpNoDelay(true)
                        .setConnectTimeout(10_000),
                new PoolOptions().setHttp1MaxSize(Math.max(1, maxConnections)).setMaxWaitQueueSize(-1));
    }

    private int port() {
        return base.getPort() > 0 ? base.getPort() : "https".equals(base.getScheme()) ? 443 : 80;
    }

    private String path(String endpoint) {
        String p = base.getRawPath() == null ? "" : base.getRawPath();
        return (p.endsWith("/") ? p.substring(0, p.length() - 1) : p) + endpoint;
    }

    /** GET {@code path} and parse the JSON answer (the model list before a run). */
    public JsonNode getJson(String path) throws Exception {
        CompletableFuture<JsonNode> out = new CompletableFuture<>();
        RequestOptions o = new RequestOptions().setMethod(HttpMethod.GET).setHost(base.getHost()).setPort(port())
                .setURI(path(path)).setSsl("https".equals(base.getScheme())).setIdleTimeout(10_000);
        if (apiKey != null) {
            o.putHeader("Authorization", "Bearer " + apiKey);
        }
        http.request(o).compose(r -> r.send()).compose(r -> r.body().map(b -> {
            if (r.statusCode() != 200) {
                throw new IllegalStateException("HTTP " + r.statusCode() + " from " + path + ": "
                        + SseTimings.abbreviate(b.toString()));
            }
            try {
                return json.readTree(b.getBytes());
            } catch (java.io.IOException e) {
                throw new IllegalStateException(path + " answered with invalid JSON");
            }
        })).onComplete(ar -> {
            if (ar.succeeded()) {
                out.complete(ar.result());
            } else {
                out.completeExceptionally(ar.cause());
            }
        });
        try {
            return out.get();
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception ex ? ex : e;
        }
    }

    /**
     * Sends {@code bodies[i]} to {@code endpoint} at {@code offsets[i]} seconds after the start, at most
     * {@code maxConcurrency} at a time (null: no cap), and waits for every answer.
     */
    public Run run(String endpoint, List<byte[]> bodies, int[] expectedPrompt, double[] offsets, Integer maxConcurrency,
                   Progress progress) throws InterruptedException {
        int n = bodies.size();
        RunState s = new RunState(endpoint, bodies, expectedPrompt, offsets, maxConcurrency, progress);
        if (n == 0) {
            return new Run(List.of(), 0, 0);
        }
        vertx.runOnContext(v -> s.begin());
        try {
            s.finished.get();
        } catch (ExecutionException e) {
            throw new IllegalStateException("the benchmark's event loop failed: " + e.getCause(), e.getCause());
        }
        return new Run(Arrays.asList(s.outcomes), s.endNanos - s.startNanos, s.maxInFlight);
    }

    /** One run's bookkeeping; touched only on the event loop. */
    private final class RunState {
        final String endpoint;
        final List<byte[]> bodies;
        final int[] expectedPrompt;
        final double[] offsets;
        final Integer cap;
        final Progress progress;
        final RequestOutcome[] outcomes;
        final ArrayDeque<Integer> waiting = new ArrayDeque<>();
        final CompletableFuture<Void> finished = new CompletableFuture<>();
        long startNanos;
        long endNanos;
        int next;
        int inFlight;
        int maxInFlight;
        int done;

        RunState(String endpoint, List<byte[]> bodies, int[] expectedPrompt, double[] offsets, Integer cap,
                 Progress progress) {
            this.endpoint = endpoint;
            this.bodies = bodies;
            this.expectedPrompt = expectedPrompt;
            this.offsets = offsets;
            this.cap = cap;
            this.progress = progress;
            this.outcomes = new RequestOutcome[bodies.size()];
        }

        void begin() {
            startNanos = System.nanoTime();
            arrivals();
        }

        /** Sends every request whose time has come, then sleeps until the next one's. */
        void arrivals() {
            while (next < bodies.size()) {
                long due = startNanos + (long) (offsets[next] * 1e9);
                long wait = due - System.nanoTime();
                if (wait > 500_000) {
                    vertx.setTimer(Math.max(1, wait / 1_000_000), t -> arrivals());
                    return;
                }
                arrive(next++);
            }
        }

        void arrive(int i) {
            if (cap != null && inFlight >= cap) {
                waiting.add(i);
            } else {
                send(i);
            }
        }

        void send(int i) {
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            progress.inFlight.set(inFlight);
            long sent = System.nanoTime();
            RequestOptions o = new RequestOptions().setMethod(HttpMethod.POST).setHost(base.getHost()).setPort(port())
                    .setURI(path(endpoint)).setSsl("https".equals(base.getScheme()))
                    .setIdleTimeout(requestTimeout.toMillis()).putHeader("Content-Type", "application/json");
            if (apiKey != null) {
                o.putHeader("Authorization", "Bearer " + apiKey);
            }
            http.request(o).compose(req -> req.send(Buffer.buffer(bodies.get(i)))).onComplete(ar -> {
                if (ar.failed()) {
                    end(i, RequestOutcome.failed("request failed: " + ar.cause(), System.nanoTime() - sent,
                            expectedPrompt[i]));
                } else {
                    read(i, ar.result(), sent);
                }
            });
        }

        void read(int i, HttpClientResponse resp, long sent) {
            if (resp.statusCode() != 200) {
                resp.body().onComplete(b -> end(i, RequestOutcome.failed("HTTP " + resp.statusCode() + ": "
                        + errorMessage(b.succeeded() ? b.result().toString() : ""), System.nanoTime() - sent,
                        expectedPrompt[i])));
                return;
            }
            SseTimings t = new SseTimings(json, sent);
            boolean[] ended = {false};
            resp.handler(buf -> t.feed(buf.getBytes(), System.nanoTime()));
            resp.exceptionHandler(e -> {
                if (!ended[0]) {
                    ended[0] = true;
                    end(i, RequestOutcome.failed("stream broke: " + e, System.nanoTime() - sent, expectedPrompt[i]));
                }
            });
            resp.endHandler(v -> {
                if (!ended[0]) {
                    ended[0] = true;
                    end(i, t.outcome(System.nanoTime(), expectedPrompt[i]));
                }
            });
        }

        void end(int i, RequestOutcome outcome) {
            outcomes[i] = outcome;
            inFlight--;
            done++;
            progress.done.incrementAndGet();
            if (!outcome.ok()) {
                progress.failed.incrementAndGet();
            }
            progress.inFlight.set(inFlight);
            Integer w = waiting.poll();
            if (w != null) {
                send(w);
            }
            if (done == bodies.size()) {
                endNanos = System.nanoTime();
                finished.complete(null);
            }
        }

        String errorMessage(String body) {
            try {
                JsonNode e = json.readTree(body).path("error");
                if (e.isObject()) {
                    return SseTimings.abbreviate(e.path("message").asText(body));
                }
            } catch (java.io.IOException ignored) {
                // not JSON
            }
            return SseTimings.abbreviate(body);
        }
    }

    @Override
    public void close() {
        try {
            http.close().toCompletionStage().toCompletableFuture().get();
            vertx.close().toCompletionStage().toCompletableFuture().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException e) {
            // closing is best effort
        }
    }
}
