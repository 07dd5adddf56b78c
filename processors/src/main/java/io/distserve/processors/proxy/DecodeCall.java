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
 * KV is still leased). A stream that breaks (reset, an early end, an error event, no byte within the timeout) goes on
 * elsewhere with the tokens the client has ({@link NextAttempt}), as does a whole answer that broke (from scratch:
 * the client has nothing yet) and a migration whose prefill lease was lost; past the limit, a stream ends with an
 * SSE error event.
 */
public final class DecodeCall implements Processor {

    private final NodeClient client;
    private final PairConnections pairs;
    private final Duration firstByteTimeout;
    private final RequestMetrics metrics;
    private final NextAttempt attempts;

    public DecodeCall(NodeClient client, PairConnections pairs, Duration firstByteTimeout, RequestMetrics metrics,
                      NextAttempt attempts) {
        this.client = client;
        this.pairs = pairs;
        this.firstByteTimeout = firstByteTimeout;
        this.metrics = metrics;
        this.attempts = attempts;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        ProxyCall call = ProxyCall.of(exchange);
        NodeClient.Stream upstream;
        try {
            upstream = send(call, true);
        } catch (NodeFailure e) {
            if (leaseLost(e) && attempts.prefillAgain(exchange, call, e.getMessage())) {
                return;
            }
            throw e;
        }
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
                byte[] text;
                try {
                    text = upstream.body().readAllBytes();
                } catch (IOException e) {
                    call.requireClient("decode");
                    call.decode.fail("answer broke: " + e.getMessage());
                    if (attempts.answerAgain(exchange, call, "the decode node's answer broke: " + e.getMessage())) {
                        return;
                    }
                    throw new NodeFailure(call.decode.url(), "failed mid-answer: " + e.getMessage(), e);
                }
                ObjectNode answer = (ObjectNode) client.json().readTree(text);
                answer.put("id", call.id);
                answer.put("created", call.created);
                call.completionTokens = answer.path("usage").path("completion_tokens").asInt();
                call.decode.complete();
                ProxyReplies.json(exchange, metrics, 200, client.json().writeValueAsString(answer));
            }
        }
    }

    /**
     * The decode engine could not take the KV from the prefill engine: the prefill engine died, or its lease is
     * gone (expired, or taken by a decode engine that died after its pull).
     */
    private boolean leaseLost(NodeFailure failure) {
        if (failure.status() != 503) {
            return false;
        }
        String code = client.clientError(new NodeClient.Reply(failure.status(), failure.answer())).code();
        return "kv_lease_gone".equals(code) || "migration_failed".equals(code);
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
            if (leaseLost(e)) {
                call.decode.complete(); // the node is fine: the KV it was sent for is not
            } else {
                call.decode.fail(e.getMessage());
            }
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
        call.putResumeIds(body); // the KV holds the prompt and these; the decode engine goes on after them
        if (call.request.stream()) {
            // the decode engine's usage chunk gives the request's log line its token count; relay drops it again
            // when the client did not ask for it
            JsonNode options = body.get("stream_options");
            (options instanceof ObjectNode o ? o : body.putObject("stream_options")).put("include_usage", true);
            // every token's id, so that a stream that breaks can go on elsewhere; relay drops them again unless the
            // client asked
            body.put("return_token_ids", true);
        }
        return body;
    }

    private void relay(Exchange exchange, ProxyCall call, NodeClient.Stream upstream) throws IOException {
        SseResponse sse = ProxyReplies.openStream(exchange, call, upstream::close);
        int[] skip = {call.firstChunkSent ? call.prefillText.length() : 0};
        boolean[] firstId = {true};
        String[] errorEvent = {null};
        boolean done;
        try {
            done = SseRelay.read(upstream.body(), payload -> {
                JsonNode chunk = client.json().readTree(payload);
                if (!(chunk instanceof ObjectNode c) || chunk.has("error")) {
                    errorEvent[0] = payload;
                    return false;
                }
                c.put("id", call.id);
                c.put("created", call.created);
                takeIds(call, c, firstId);
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
        } catch (IOException e) {
            if (sse.clientGone()) {
                sse.end();
                metrics.requestEnded(exchange.getFromRouteId(), RequestMetrics.CLIENT_CLOSED);
                return;
            }
            broke(exchange, call, sse, "stream_broke", "stream broke: " + e.getMessage());
            return;
        }
        if (errorEvent[0] != null || (!done && !sse.clientGone())) {
            broke(exchange, call, sse, errorEvent[0] != null ? "error_event" : "early_end", errorEvent[0] != null
                    ? "the node sent an error event: " + NodeClient.abbreviate(errorEvent[0].getBytes(
                            java.nio.charset.StandardCharsets.UTF_8)) : "the stream ended without [DONE]");
            return;
        }
        call.decode.complete();
        sse.end();
        metrics.requestEnded(exchange.getFromRouteId(), sse.clientGone() ? RequestMetrics.CLIENT_CLOSED : 200);
    }

    /** A decode stream that broke goes on elsewhere if it may; if not, the client's stream ends with the error. */
    private void broke(Exchange exchange, ProxyCall call, SseResponse sse, String cause, String message) {
        call.decode.fail(message);
        if (attempts.streamAgain(exchange, call, cause, message)) {
            return;
        }
        ProxyErrors.sendStreamError(sse, client.json(), "The decode node " + call.decode.url() + " failed mid-stream: "
                + message);
        sse.end();
        metrics.requestEnded(exchange.getFromRouteId(), 200);
    }

    /**
     * Records the token ids of a decode chunk as part of the answer (the first one of this attempt's stream is the
     * prefill's token, already recorded), and drops them from the chunk unless the client asked for ids.
     */
    private static void takeIds(ProxyCall call, ObjectNode chunk, boolean[] firstId) {
        JsonNode choice = chunk.path("choices").path(0);
        if (!(choice instanceof ObjectNode c)) {
            return;
        }
        for (JsonNode id : c.path("token_ids")) {
            if (firstId[0]) {
                firstId[0] = false;
            } else {
                call.answerIds.add(id.asInt());
            }
        }
        if (!call.request.returnTokenIds()) {
            c.remove("token_ids");
            c.remove("prompt_token_ids");
        }
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
        if (chat && call.roleSent) {
            holder.remove("role");
        } else if (holder.has("role")) {
            call.roleSent = true;
        }
        String text = holder.path(field).asText("");
        if (skip[0] > 0 && !text.isEmpty()) {
            int cut = Math.min(skip[0], text.length());
            skip[0] -= cut;
            text = text.substring(cut);
            holder.put(field, text);
        }
        boolean finishing = !choice.path("finish_reason").isNull() && choice.has("finish_reason");
        return !text.isEmpty() || finishing || (chat && holder.has("role")) || choice.has("token_ids");
    }
}
