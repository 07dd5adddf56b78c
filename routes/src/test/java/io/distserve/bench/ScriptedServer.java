package io.distserve.bench;

import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerResponse;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;

/**
 * An OpenAI-style server for the benchmark's tests whose every answer follows a script: status, the time to the first
 * token and between tokens, an error event, a cut stream. Counts the requests in flight (and the most at once).
 */
final class ScriptedServer implements AutoCloseable {

    /** How request number {@code i} (in arrival order) is answered. */
    record Script(int status, int tokens, long firstMs, long gapMs, boolean errorEvent, boolean cut) {
        static Script ok(int tokens, long firstMs, long gapMs) {
            return new Script(200, tokens, firstMs, gapMs, false, false);
        }
    }

    final Vertx vertx = Vertx.vertx();
    final AtomicInteger inFlight = new AtomicInteger();
    final AtomicInteger maxInFlight = new AtomicInteger();
    final AtomicInteger received = new AtomicInteger();
    private final HttpServer server;
    final int port;

    ScriptedServer(IntFunction<Script> script) throws Exception {
        server = vertx.createHttpServer().requestHandler(req -> {
            if (req.path().equals("/v1/models")) {
                req.response().putHeader("Content-Type", "application/json")
                        .end("{\"object\":\"list\",\"data\":[{\"id\":\"scripted\",\"object\":\"model\"}]}");
                return;
            }
            req.body().onSuccess(body -> {
                int now = inFlight.incrementAndGet();
                maxInFlight.accumulateAndGet(now, Math::max);
                Script s = script.apply(received.getAndIncrement());
                HttpServerResponse resp = req.response();
                if (s.status() != 200) {
                    inFlight.decrementAndGet();
                    resp.setStatusCode(s.status()).putHeader("Content-Type", "application/json")
                            .end("{\"error\":{\"message\":\"scripted failure\",\"type\":\"server_error\"}}");
                    return;
                }
                resp.setChunked(true).putHeader("Content-Type", "text/event-stream");
                resp.write(""); // headers now, tokens later
                emit(resp, s, 0);
            });
        });
        server.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        port = server.actualPort();
    }

    private void emit(HttpServerResponse resp, Script s, int k) {
        vertx.setTimer(Math.max(1, k == 0 ? s.firstMs() : s.gapMs()), t -> {
            if (s.cut() && k == s.tokens() / 2) {
                inFlight.decrementAndGet();
                resp.reset(); // the server dies mid-stream
                return;
            }
            if (k < s.tokens()) {
                resp.write("data: {\"choices\":[{\"index\":0,\"text\":\"t" + k + "\"}]}\n\n");
                emit(resp, s, k + 1);
                return;
            }
            if (s.errorEvent()) {
                resp.write("data: {\"error\":{\"message\":\"scripted mid-stream failure\"}}\n\n");
            }
            resp.write("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":" + s.tokens()
                    + "}}\n\n");
            inFlight.decrementAndGet();
            resp.end("data: [DONE]\n\n");
        });
    }

    String url() {
        return "http://127.0.0.1:" + port;
    }

    @Override
    public void close() throws Exception {
        server.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
}
