package io.distserve.processors.proxy;

import io.distserve.processors.http.ClientDisconnect;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.OpenAiException;
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
 * chunk for streams. A node that fails before answering is a {@link NodeFailure} (the route tries another); a
 * failure mid-stream ends the client's stream with an SSE error event and {@code [DONE]}.
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

    private final NodeClient client;
    private final NodeStreams streams;
    private final Duration firstByteTimeout;
    private final RequestMetrics metrics;

    /**
     * @param client           for the JSON mapper and the reading of a node's 4xx answer
     * @param firstByteTimeout the longest wait for the node's first byte, and between later bytes
     */
    public ForwardHybrid(NodeClient client, NodeStreams streams, Duration firstByteTimeout, RequestMetrics metrics) {
        this.client = client;
        this.streams = streams;
        this.firstByteTimeout = firstByteTimeout;
        this.metrics = metrics;
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
        private final String node;
        private final String path;
        private final byte[] body;
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
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
            ClientDisconnect.onClose(exchange, this::clientLeft);
        }

        /** @param mayResend whether a kept-alive connection found closed may be replaced once (the node saw nothing) */
        void send(boolean mayResend) {
            streams.post(node, path, firstByteTimeout).onComplete(opened -> {
                if (finished) {
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
                    if (finished) {
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
            RecordParser lines = RecordParser.newDelimited("\n", line -> {
                if (finished) {
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
            response.endHandler(v -> streamEnded());
            response.exceptionHandler(this::streamBroke);
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
            finish(f);
        }

        /** A whole (non-stream) answer that broke after its headers: the node did the work, nothing to retry. */
        private void answerBroke(Throwable failure) {
            if (clientGone) {
                clientLeft();
                return;
            }
            call.hybrid.fail("answer broke: " + failure);
            finish(new OpenAiException(503, "service_unavailable", null, "upstream_failed",
                    "The node " + node + " failed mid-answer: " + failure));
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
