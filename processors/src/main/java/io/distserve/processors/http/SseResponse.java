package io.distserve.processors.http;

import io.vertx.core.http.HttpServerResponse;
import org.apache.camel.Exchange;
import org.apache.camel.component.platform.http.vertx.HttpMessage;

/**
 * A Server-Sent Events response written straight to the Vert.x response, one {@code data:} frame per call.
 *
 * <p>Why not hand Camel an InputStream: platform-http-vertx copies a streamed body in 4 KiB reads that wait for a
 * full buffer, so tokens would reach the client in bursts (LMDeploy's #3227). Writing each frame to the response
 * flushes it at once. The step that opened the stream owns the response until {@link #end()}, on whichever thread it
 * runs (the event loop, or a worker behind a {@code threads} step: Vert.x hands such writes to the event loop);
 * Camel then sees an ended response and writes nothing more.
 */
public final class SseResponse {

    private final HttpServerResponse response;
    private volatile boolean clientGone;
    private boolean started;
    private boolean ended;

    private SseResponse(HttpServerResponse response) {
        this.response = response;
    }

    /** The exchange's HTTP response, which must come from platform-http on Vert.x. */
    public static SseResponse of(Exchange exchange) {
        HttpMessage message = exchange.getIn(HttpMessage.class);
        if (message == null || message.getResponse() == null) {
            throw new IllegalStateException("streaming needs the platform-http Vert.x engine (camel-platform-http-vertx)");
        }
        return new SseResponse(message.getResponse());
    }

    /**
     * Sends the 200 status and event-stream headers. {@code onClientGone} runs (on a Vert.x thread) when the client
     * closes the connection before the stream ends.
     */
    public void start(Runnable onClientGone) {
        response.setStatusCode(200);
        response.putHeader("Content-Type", "text/event-stream; charset=utf-8");
        response.putHeader("Cache-Control", "no-cache");
        response.putHeader("X-Accel-Buffering", "no");
        response.setChunked(true);
        response.closeHandler(v -> {
            clientGone = true;
            onClientGone.run();
        });
        started = true;
        if (response.closed()) {
            // gone before the handler was set: it will never fire
            clientGone = true;
            onClientGone.run();
            return;
        }
        // Send the headers now: the client sees the stream open before the first token.
        response.write("");
    }

    public boolean clientGone() {
        return clientGone || response.closed();
    }

    /** Writes {@code data: <payload>\n\n}; returns false when the client is gone. */
    public boolean send(String payload) {
        if (!started || ended || clientGone()) {
            return false;
        }
        response.write("data: " + payload + "\n\n");
        return true;
    }

    /** Whether the client reads slower than we write: the caller should pause its source until {@link #drainHandler}. */
    public boolean writeQueueFull() {
        return response.writeQueueFull();
    }

    /** Runs {@code action} once the client has taken enough of what was written (on the response's event loop). */
    public void drainHandler(Runnable action) {
        response.drainHandler(v -> action.run());
    }

    /**
     * Writes {@code data: [DONE]} and ends the response. Idempotent. When the client is gone the response is still
     * marked ended (the write fails quietly): otherwise Camel, finding it open, would try to send its own reply on
     * the closed connection and log "Response head already sent".
     */
    public void end() {
        if (ended) {
            return;
        }
        ended = true;
        try {
            if (clientGone()) {
                response.end();
            } else {
                response.end("data: [DONE]\n\n");
            }
        } catch (IllegalStateException alreadyEnded) {
            // ended elsewhere: nothing left to write
        }
    }
}
