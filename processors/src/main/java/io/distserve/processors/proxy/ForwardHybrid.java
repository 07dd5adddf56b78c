package io.distserve.processors.proxy;

import io.distserve.processors.http.ClientDisconnect;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.metrics.RequestMetrics;
import java.io.IOException;
import java.time.Duration;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Hybrid serving: forwards the request as it came to the chosen Hybrid node and its answer as it goes, chunk by
 * chunk for streams. A node that fails before answering is a {@link NodeFailure} (the route tries another); a
 * failure mid-stream ends the client's stream with an SSE error event and {@code [DONE]}.
 */
public final class ForwardHybrid implements Processor {

    private final NodeClient client;
    private final Duration firstByteTimeout;
    private final RequestMetrics metrics;

    public ForwardHybrid(NodeClient client, Duration firstByteTimeout, RequestMetrics metrics) {
        this.client = client;
        this.firstByteTimeout = firstByteTimeout;
        this.metrics = metrics;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        ProxyCall call = ProxyCall.of(exchange);
        String node = call.hybrid.url();
        // the request as it came (the parser keeps it unchanged): no second serialization
        byte[] body = call.rawBody != null ? call.rawBody : client.json().writeValueAsBytes(call.request.body());
        NodeClient.Stream upstream;
        try {
            upstream = client.postStream(node, call.request.kind().path(), body, firstByteTimeout);
        } catch (NodeFailure e) {
            call.hybrid.fail(e.getMessage());
            throw e;
        }
        try (upstream) {
            if (upstream.status() != 200) {
                NodeClient.Reply reply = new NodeClient.Reply(upstream.status(), upstream.body().readAllBytes());
                call.hybrid.complete();
                throw client.clientError(reply);
            }
            if (!call.request.stream()) {
                ClientDisconnect.onClose(exchange, upstream::close);
                byte[] answer = upstream.body().readAllBytes();
                call.hybrid.complete();
                ProxyReplies.json(exchange, metrics, 200, answer);
                return;
            }
            SseResponse sse = ProxyReplies.openStream(exchange, call, upstream::close);
            try {
                SseRelay.read(upstream.body(), sse::send);
                call.hybrid.complete();
            } catch (IOException e) {
                if (!sse.clientGone()) {
                    call.hybrid.fail("stream broke: " + e.getMessage());
                    ProxyErrors.sendStreamError(sse, client.json(), "The node " + node + " failed mid-stream: "
                            + e.getMessage());
                }
            }
            sse.end();
            metrics.requestEnded(exchange.getFromRouteId(), 200);
        }
    }
}
