package io.distserve.processors.proxy;

import io.distserve.processors.http.ClientDisconnect;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.routing.NodeRouter;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClientRequest;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpClosedException;
import io.vertx.core.parsetools.RecordParser;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.apache.camel.AsyncCallback;
import org.apache.camel.Exchange;
import org.apache.camel.support.AsyncProcessorSupport;

/**
 * Hybrid serving: forwards the request as it came to the chosen Hybrid node and its answer as it goes, chunk by
 * chunk for streams. A node that fails before answering is a {@link NodeFailure} (the route tries another). A
 * stream that breaks (the node died, reset the connection, or sent an error event) moves to another Hybrid node,
 * at most {@code maxMigrations} times: the proxy asks every node for the token ids of each chunk
 * ({@code return_token_ids}, stripped again unless the client asked), and the next node gets the same request with
 * those ids as {@code resume_token_ids}, so it goes on exactly where the first stopped; its chunks continue the
 * same stream (same id and creation time). Past that, the client's stream ends with an SSE error event and
 * {@code [DONE]}.
 *
 * <p>Non-blocking: an asynchronous Camel processor on Vert.x's HttpClient ({@link NodeStreams}). On the proxy's
 * event-loop consumer the whole forward, request to last byte, runs on the event loop that received the request:
 * no thread waits on the node. The answer is written to the client as it arrives (a whole one at once, a stream
 * event by event), and the exchange is done (the route goes on to its finally step, which releases the node and
 * logs the request) when it has been: that bookkeeping is not in the way of the client's answer. Streams respect
 * the client's pace (reading from the node pauses while the client's write queue is full), and a client that goes
 * away cancels the request to the node.
 */
public final class ForwardHybrid extends AsyncProcessorSupport {

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ForwardHybrid.class);

    /** A node's SSE error event in the middle of a stream: its generation failed. */
    private static final class NodeErrorEvent extends RuntimeException {
        NodeErrorEvent(String event) {
            super("the node sent an error event: " + event, null, false, false);
        }
    }

    private final NodeClient client;
    private final NodeStreams streams;
    private final Duration firstByteTimeout;
    private final RequestMetrics metrics;
    private final NodeRouter router;
    private final int maxMigrations;
    private final io.micrometer.core.instrument.MeterRegistry meters;

    /**
     * @param client           for the JSON mapper and the reading of a node's 4xx answer
     * @param firstByteTimeout the longest wait for the node's first byte, and between later bytes
     */
    public ForwardHybrid(NodeClient client, NodeStreams streams, Duration firstByteTimeout, RequestMetrics metrics) {
        this(client, streams, firstByteTimeout, metrics, null, 0, null);
    }

    /**
     * @param router        where a broken stream moves to (null: streams do not move)
     * @param maxMigrations how often one stream may move ({@code distserve.proxy.maxMigrations})
     * @param meters        for {@code distserve_proxy_request_migrations_total{cause}} (null: not counted)
     */
    public ForwardHybrid(NodeClient client, NodeStreams streams, Duration firstByteTimeout, RequestMetrics metrics,
                         NodeRouter router, int maxMigrations, io.micrometer.core.instrument.MeterRegistry meters) {
        this.client = client;
        this.streams = streams;
        this.firstByteTimeout = firstByteTimeout;
        this.metrics = metrics;
        this.router = router;
        this.maxMigrations = router == null ? 0 : maxMigrations;
        this.meters = meters;
    }

    @Override
    public boolean process(Exchange exchange, AsyncCallback callback) {
        Forward forward;
        try {
            forward = new Forward(exchange, callback);
        } catch (RuntimeException e) {
            exchange.setException(e);
            callback.done(true);
            return true;
        }
        forward.send(true);
        return false;
    }

    /**
     * How a kept-alive connection the node had closed shows when reused: closed, or reset (an IOException: the
     * JDK's "Connection reset" with NIO, Netty's NativeIoException with the native epoll transport). A timeout
     * is not one: the node may be working on the request.
     */
    private static boolean staleConnection(Throwable failure) {
        return failure instanceof HttpClosedException || failure instanceof java.io.IOException;
    }

    /**
     * One forward of one request to one node. Its callbacks run on one event loop (the request's, when sent from
     * there); {@code finished} makes sure the exchange is done exactly once, whichever of the answer's end, a
     * failure or the client's leaving comes first.
     */
    private final class Forward {
        private final Exchange exchange;
        private final AsyncCallback callback;
        private final ProxyCall call;
        private String node;
        private final String path;
        private byte[] body;
        /** Streams that may move: the ids of every token the client has been sent (or held back for it). */
        private final boolean movable;
        private final boolean clientWantsIds;
        private final java.util.List<Integer> generated = new java.util.ArrayList<>();
        private String streamId;
        private String streamCreated;
        private int migrations;
        /** Callbacks of a node the stream has moved away from are stale: only those of this attempt count. */
        private volatile int attempt;
        private volatile HttpClientRequest request;
        private volatile boolean clientGone;
        private volatile boolean finished;
        private SseResponse sse;

        Forward(Exchange exchange, AsyncCallback callback) {
            this.exchange = exchange;
            this.callback = callback;
            this.call = ProxyCall.of(exchange);
            this.node = call.hybrid.url();
            this.path = call.request.kind().path();
            try {
                // the request as it came (the parser keeps it unchanged): no second serialization
                this.body = call.rawBody != null ? call.rawBody : client.json().writeValueAsBytes(call.request.body());
                this.clientWantsIds = call.request.returnTokenIds();
                this.movable = call.request.stream() && maxMigrations > 0;
                if (movable && !clientWantsIds) {
                    com.fasterxml.jackson.databind.node.ObjectNode b = call.request.body().deepCopy();
                    b.put("return_token_ids", true);
                    this.body = client.json().writeValueAsBytes(b);
                }
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
            ClientDisconnect.onClose(exchange, this::clientLeft);
        }

        /** @param mayResend whether a kept-alive connection found closed may be replaced once (the node saw nothing) */
        void send(boolean mayResend) {
            int mine = attempt;
            streams.post(node, path, firstByteTimeout).onComplete(opened -> {
                if (finished || mine != attempt) {
                    if (opened.succeeded()) {
                        opened.result().reset();
                    }
                    return;
                }
                if (opened.failed()) {
                    beforeAnswer(opened.cause());
                    return;
                }
                HttpClientRequest req = opened.result();
                request = req;
                boolean reused = streams.reused(req);
                req.send(Buffer.buffer(body)).onComplete(answer -> {
                    if (finished || mine != attempt) {
                        return;
                    }
                    if (answer.succeeded()) {
                        answered(answer.result());
                    } else if (mayResend && reused && !clientGone && staleConnection(answer.cause())) {
                        send(false);
                    } else {
                        beforeAnswer(answer.cause());
                    }
                });
            });
        }

        private void answered(HttpClientResponse response) {
            int status = response.statusCode();
            if (status >= 500) {
                response.body().onComplete(text -> beforeAnswer(new NodeFailure(node, "HTTP " + status + " from "
                        + path + ": " + (text.succeeded() ? NodeClient.abbreviate(text.result().getBytes()) : ""),
                        null)));
                return;
            }
            if (status != 200) {
                response.body().onComplete(text -> {
                    if (finished) {
                        return;
                    }
                    if (text.failed()) {
                        answerBroke(text.cause());
                        return;
                    }
                    call.hybrid.complete();
                    finish(client.clientError(new NodeClient.Reply(status, text.result().getBytes())));
                });
                return;
            }
            if (!call.request.stream()) {
                response.body().onComplete(answer -> {
                    if (finished) {
                        return;
                    }
                    if (answer.failed()) {
                        answerBroke(answer.cause());
                        return;
                    }
                    call.hybrid.complete();
                    ProxyReplies.jsonNow(exchange, metrics, 200, answer.result());
                    // the client has its answer: the token counts, for the request's log line, are read after
                    countUsage(answer.result().getBytes());
                    finish(null);
                });
                return;
            }
            relay(response);
        }

        /** The node's events, one {@code data:} line at a time, to the client's stream as they come. */
        private void relay(HttpClientResponse response) {
            sse = ProxyReplies.openStream(exchange, call, this::clientLeft);
            if (finished) {
                return; // the client was gone before its stream opened
            }
            int mine = attempt;
            RecordParser lines = RecordParser.newDelimited("\n", line -> {
                if (finished || mine != attempt) {
                    return;
                }
                String payload = SseRelay.payload(line.toString(StandardCharsets.UTF_8));
                if (payload == null) {
                    return;
                }
                if (payload.equals(SseRelay.DONE)) {
                    streamEnded();
                    return;
                }
                if (movable) {
                    if (StreamChunks.isError(payload)) {
                        streamBroke(new NodeErrorEvent(NodeClient.abbreviate(
                                payload.getBytes(StandardCharsets.UTF_8))));
                        return;
                    }
                    for (int id : StreamChunks.tokenIds(payload)) {
                        generated.add(id);
                    }
                    if (migrations == 0) {
                        if (streamId == null) {
                            streamId = StreamChunks.id(payload);
                            streamCreated = StreamChunks.created(payload);
                        }
                    } else {
                        payload = StreamChunks.continuing(payload, streamId, streamCreated);
                    }
                    if (!clientWantsIds) {
                        payload = StreamChunks.withoutIds(payload);
                        if (StreamChunks.isEmpty(payload)) {
                            return; // a token whose text is held back: the client sees it with a later one
                        }
                    }
                }
                sse.send(payload);
                if (payload.contains("\"usage\"")) {
                    countUsage(payload.getBytes(StandardCharsets.UTF_8));
                }
                if (sse.writeQueueFull()) {
                    response.pause();
                    sse.drainHandler(response::resume);
                }
            });
            response.handler(lines);
            response.endHandler(v -> {
                if (mine == attempt) {
                    streamEnded();
                }
            });
            response.exceptionHandler(e -> {
                if (mine == attempt) {
                    streamBroke(e);
                }
            });
        }

        /**
         * Moves a broken stream to another Hybrid node with the tokens streamed so far as resume_token_ids; false
         * when it may not (not a movable stream, moved too often, nothing left to generate, no other node).
         */
        private boolean moveStream(String cause, String label) {
            if (!movable || migrations >= maxMigrations || sse == null || sse.clientGone()) {
                return false;
            }
            int max = call.request.sampling().maxTokens();
            if (call.request.maxTokensGiven() && generated.size() >= max) {
                return false;
            }
            String from = node;
            if (!moveToAnotherNode()) {
                return false;
            }
            com.fasterxml.jackson.databind.node.ObjectNode b = call.request.body().deepCopy();
            b.put("return_token_ids", true);
            var resume = b.putArray("resume_token_ids");
            generated.forEach(resume::add);
            try {
                body = client.json().writeValueAsBytes(b);
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
            LOG.info("{} stream moved from {} to {} carrying {} tokens ({})", call.id, from, node, generated.size(),
                    cause);
            if (meters != null) {
                meters.counter("distserve.proxy.request.migrations", "cause", label).increment();
            }
            send(false);
            return true;
        }

        /** The node's token counts, if its body has them (else the log line says they are unknown). */
        private void countUsage(byte[] body) {
            call.usage(NodeUsage.read(client.json().getFactory(), body));
        }

        private void streamEnded() {
            if (finished) {
                return;
            }
            call.hybrid.complete();
            sse.end();
            metrics.requestEnded(exchange.getFromRouteId(), 200);
            finish(null);
        }

        private void streamBroke(Throwable failure) {
            if (finished) {
                return;
            }
            if (clientGone || sse.clientGone()) {
                clientLeft();
                return;
            }
            call.hybrid.fail("stream broke: " + failure);
            String label = failure instanceof NodeErrorEvent ? "error_event" : "stream_broke";
            if (moveStream("stream broke: " + failure, label)) {
                return;
            }
            ProxyErrors.sendStreamError(sse, client.json(), "The node " + node + " failed mid-stream: " + failure);
            sse.end();
            metrics.requestEnded(exchange.getFromRouteId(), 200);
            finish(null);
        }

        /** No answer from the node (refused, timed out, 5xx, closed): another node may be tried. */
        private void beforeAnswer(Throwable failure) {
            if (finished) {
                return;
            }
            if (clientGone) {
                clientLeft();
                return;
            }
            NodeFailure f = failure instanceof NodeFailure nf ? nf : new NodeFailure(node, path + " failed: " + failure,
                    failure);
            call.hybrid.fail(f.getMessage());
            if (migrations > 0 && !call.request.stream()) {
                // the node a whole answer moved to failed too: another, or the failure
                if (!retryWhole("the node it moved to failed: " + f.getMessage(), "moved_to_failed")) {
                    finish(f);
                }
                return;
            }
            if (migrations > 0) {
                // the node a stream moved to failed too: the client's stream is open, so on, or end it there
                if (!moveStream("the node it moved to failed: " + f.getMessage(), "moved_to_failed")) {
                    ProxyErrors.sendStreamError(sse, client.json(), "The stream could not move on: "
                            + f.getMessage());
                    sse.end();
                    metrics.requestEnded(exchange.getFromRouteId(), 200);
                    finish(null);
                }
                return;
            }
            finish(f);
        }

        /** A whole (non-stream) answer that broke after its headers: the node did the work, nothing to retry. */
        private void answerBroke(Throwable failure) {
            if (clientGone) {
                clientLeft();
                return;
            }
            call.hybrid.fail("answer broke: " + failure);
            if (retryWhole("answer broke: " + failure, "answer_broke")) {
                return;
            }
            finish(new OpenAiException(503, "service_unavailable", null, "upstream_failed",
                    "The node " + node + " failed mid-answer: " + failure));
        }

        /**
         * Takes another Hybrid node not tried yet for this request's next attempt (whose callbacks alone count from
         * now on); false when there is none.
         */
        private boolean moveToAnotherNode() {
            java.util.Optional<io.distserve.registry.NodeLease> next = router.acquire(call.model(),
                    io.distserve.registry.NodeRole.Hybrid, call.triedHybrid, call.prompt());
            if (next.isEmpty()) {
                return false;
            }
            call.triedHybrid.add(next.get().url());
            call.hybrid.close();
            call.hybrid = next.get();
            node = next.get().url();
            migrations++;
            attempt++;
            return true;
        }

        /**
         * Sends a whole (non-stream) request whose answer broke to another Hybrid node, from scratch (the client has
         * nothing of it yet); false when it may not (moved too often, the client left, no other node).
         */
        private boolean retryWhole(String cause, String label) {
            if (router == null || migrations >= maxMigrations || clientGone) {
                return false;
            }
            String from = node;
            if (!moveToAnotherNode()) {
                return false;
            }
            LOG.info("{} request moved from {} to {} ({})", call.id, from, node, cause);
            if (meters != null) {
                meters.counter("distserve.proxy.request.migrations", "cause", label).increment();
            }
            send(false);
            return true;
        }

        /**
         * The client closed its connection: the node's request is cancelled (its connection reset), the lease is left
         * for the finally step to release (a cancelled request says nothing about the node), and the response is
         * marked ended so that Camel writes nothing on the closed connection.
         */
        private void clientLeft() {
            clientGone = true;
            HttpClientRequest req = request;
            if (req != null) {
                req.reset();
            }
            if (finished) {
                return;
            }
            if (sse != null) {
                sse.end();
            } else {
                ClientDisconnect.endQuietly(exchange);
            }
            metrics.requestEnded(exchange.getFromRouteId(), RequestMetrics.CLIENT_CLOSED);
            finish(null);
        }

        private void finish(Throwable failure) {
            if (finished) {
                return;
            }
            finished = true;
            if (failure != null) {
                exchange.setException(failure);
            }
            callback.done(false);
        }
    }
}
