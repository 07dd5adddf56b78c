package io.distserve.processors.proxy;

import io.distserve.processors.http.Replies;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.metrics.RequestMetrics;
import io.vertx.core.buffer.Buffer;
import java.nio.ByteBuffer;
import org.apache.camel.Exchange;

/** Opening the client's stream and answering, shared by the proxy's steps. */
final class ProxyReplies {

    /** Exchange property holding the open client stream, for the error handler. */
    static final String SSE_PROPERTY = "distserveSse";

    private ProxyReplies() {
    }

    /** Opens the client's SSE stream once; a client that goes away closes {@code upstream} work via the call. */
    static SseResponse openStream(Exchange exchange, ProxyCall call, Runnable onClientGone) {
        if (call.sse == null) {
            SseResponse sse = SseResponse.of(exchange);
            sse.start(onClientGone);
            call.sse = sse;
            exchange.setProperty(SSE_PROPERTY, sse);
        }
        return call.sse;
    }

    static void json(Exchange exchange, RequestMetrics metrics, int status, String body) {
        Replies.json(exchange, status, body);
        metrics.requestEnded(exchange.getFromRouteId(), status);
    }

    /**
     * A node's JSON answer as it came, without decoding it to a String and back. As a ByteBuffer: platform-http
     * writes one with its Content-Length at once, whereas a byte[] goes through its InputStream path, which reads it
     * on a worker thread (executeBlocking) and sends it chunked.
     */
    static void json(Exchange exchange, RequestMetrics metrics, int status, byte[] body) {
        Replies.json(exchange, status, "");
        exchange.getMessage().setBody(ByteBuffer.wrap(body));
        metrics.requestEnded(exchange.getFromRouteId(), status);
    }

    /**
     * A node's whole JSON answer, to the client at once ({@link Replies#sendNow}): the route's finally step (lease
     * release, log line) then runs after the client has it, as nginx logs after it has relayed.
     */
    static void jsonNow(Exchange exchange, RequestMetrics metrics, int status, Buffer body) {
        if (Replies.sendNow(exchange, status, "application/json", body)) {
            metrics.requestEnded(exchange.getFromRouteId(), status);
        } else {
            json(exchange, metrics, status, body.getBytes());
        }
    }
}
