package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.processors.http.ClientDisconnect;
import io.distserve.processors.http.ClientGoneException;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.RequestKind;
import java.io.IOException;
import java.time.Duration;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Route step "migrate + decode": sends the original request with a {@code migration_request} to the chosen Decode
 * node, which pulls the KV blocks from the prefill node and generates the rest. Its answer goes to the client as it
 * comes; in a stream whose first token already left (from the prefill), the decode's repeat of that token's text is
 * not sent twice. A decode node that fails before answering is a {@link NodeFailure} (the route tries another; the
 * KV is still leased); a failure mid-stream ends the stream with an SSE error event.
 */
public final class DecodeCall implements Processor {

    private final NodeClient client;
    private final PairConnections pairs;
    private final Duration firstByteTimeout;
    private final RequestMetrics metrics;

    public DecodeCall(NodeClient client, PairConnections pairs, Duration firstByteTimeout, RequestMetrics metrics) {
        this.client = client;
        this.pairs = pairs;
        this.firstByteTimeout = firstByteTimeout;
        this.metrics = metrics;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        ProxyCall call = ProxyCall.of(exchange);
        NodeClient.Stream upstream = send(call, true);
        try (upstream) {
            if (upstream.status() != 200) {
                NodeClient.Reply reply = new NodeClient.Reply(upstream.status(), upstream.body().readAllBytes());
                call.decode.complete();
                throw client.clientError(reply);
            }
            call.leaseSettled = true; // a 200 comes only after the decode engine pulled and freed the lease
            if (call.request.stream()) {
                relay(exchange, call, upstream);
            } else {
                ClientDisconnect.onClose(exchange, call::clientLeft); // the cancel also ends the body's read
                ObjectNode answer = (ObjectNode) client.json().readTree(upstream.body().readAllBytes());
                answer.put("id", call.id);
                answer.put("created", call.created);
                call.completionTokens = answer.path("usage").path("completion_tokens").asInt();
                call.decode.complete();
                ProxyReplies.json(exchange, metrics, 200, client.json().writeValueAsString(answer));
            }
        }
    }

    /** Posts to the decode node; a pair the engine says is not connected (it restarted) is connected again once. */
    private NodeClient.Stream send(ProxyCall call, boolean mayReconnect) throws Exception {
        call.requireClient("decode");
        String node = call.decode.url();
        byte[] body = client.json().writeValueAsBytes(decodeBody(call));
        NodeClient.Stream upstream;
        try {
            upstream = client.postStream(node, call.request.kind().path(), body, firstByteTimeout, call.cancel);
        } catch (ClientGoneException e) {
            call.decode.close();
            throw e;
        } catch (NodeFailure e) {
            call.decode.fail(e.getMessage());
            throw e;
        }
        if (upstream.status() == 400 && mayReconnect) {
            byte[] text = upstream.body().readAllBytes();
            upstream.close();
            NodeClient.Reply reply = new NodeClient.Reply(400, text);
            if ("migration_request.remote_engine_id".equals(client.clientError(reply).param())) {
                pairs.invalidate(call.prefill.url(), node);
                call.migrationProtocol = pairs.ensure(call.prefill.url(), node, null).protocol();
                return send(call, false);
            }
            return new NodeClient.Stream(400, new java.io.ByteArrayInputStream(text));
        }
        return upstream;
    }

    private ObjectNode decodeBody(ProxyCall call) {
        JsonNode handOff = call.prefillAnswer.path("distserve");
        ObjectNode body = call.request.body().deepCopy();
        ObjectNode migration = body.putObject("migration_request");
        migration.put("protocol", call.migrationProtocol == null ? "tcp" : call.migrationProtocol);
        migration.put("remote_engine_id", handOff.path("engine_id").asText());
        migration.put("remote_session_id", handOff.path("session_id").asText());
        migration.set("remote_block_ids", handOff.path("block_ids"));
        migration.put("remote_token_id", handOff.path("first_token_id").asInt());
        migration.set("prompt_token_ids", handOff.path("prompt_token_ids"));
        migration.put("cached_tokens", handOff.path("cached_tokens").asInt(0));
        if (call.request.stream()) {
            // the decode engine's usage chunk gives the request's log line its token count; relay drops it again
            // when the client did not ask for it
            JsonNode options = body.get("stream_options");
            (options instanceof ObjectNode o ? o : body.putObject("stream_options")).put("include_usage", true);
        }
        return body;
    }

    private void relay(Exchange exchange, ProxyCall call, NodeClient.Stream upstream) throws IOException {
        SseResponse sse = ProxyReplies.openStream(exchange, call, upstream::close);
        int[] skip = {call.firstChunkSent ? call.prefillText.length() : 0};
        try {
            SseRelay.read(upstream.body(), payload -> {
                JsonNode chunk = client.json().readTree(payload);
                if (!(chunk instanceof ObjectNode c) || chunk.has("error")) {
                    sse.send(payload);
                    return false;
                }
                c.put("id", call.id);
                c.put("created", call.created);
                if (c.path("usage").isObject()) {
                    call.completionTokens = c.path("usage").path("completion_tokens").asInt();
                    if (!call.request.includeUsage() && c.path("choices").isEmpty()) {
                        return true; // the usage chunk the proxy asked for, not the client
                    }
                }
                if (!trim(call, c, skip)) {
                    return true;
                }
                return sse.send(client.json().writeValueAsString(c));
            });
            call.decode.complete();
        } catch (IOException e) {
            if (!sse.clientGone()) {
                call.decode.fail("stream broke: " + e.getMessage());
                ProxyErrors.sendStreamError(sse, client.json(), "The decode node " + call.decode.url()
                        + " failed mid-stream: " + e.getMessage());
            }
        }
        sse.end();
        metrics.requestEnded(exchange.getFromRouteId(), 200);
    }

    /**
     * Drops the text the client already has (the prefill's first token) from the start of the decode stream, and
     * the repeated assistant role of chat. Returns false when nothing is left worth sending.
     */
    private static boolean trim(ProxyCall call, ObjectNode chunk, int[] skip) {
        JsonNode choices = chunk.path("choices");
        if (!choices.isArray() || choices.isEmpty()) {
            return true; // the usage chunk
        }
        ObjectNode choice = (ObjectNode) choices.get(0);
        boolean chat = call.request.kind() == RequestKind.CHAT;
        ObjectNode holder = chat ? (ObjectNode) choice.path("delta") : choice;
        String field = chat ? "content" : "text";
        if (chat && call.firstChunkSent) {
            holder.remove("role");
        }
        String text = holder.path(field).asText("");
        if (skip[0] > 0 && !text.isEmpty()) {
            int cut = Math.min(skip[0], text.length());
            skip[0] -= cut;
            text = text.substring(cut);
            holder.put(field, text);
        }
        boolean finishing = !choice.path("finish_reason").isNull() && choice.has("finish_reason");
        return !text.isEmpty() || finishing || (chat && holder.has("role"));
    }
}
