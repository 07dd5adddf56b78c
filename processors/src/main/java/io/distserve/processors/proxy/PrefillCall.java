package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.processors.http.ClientDisconnect;
import io.distserve.processors.http.ClientGoneException;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.processors.openai.RequestKind;
import java.io.IOException;
import java.time.Duration;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Route step "prefill": sends the request to the chosen Prefill node with max_tokens 1 and stream off; the node
 * answers with the first token and a KV lease. When the client streams, the first token leaves for the client right
 * away, before the decode node is even asked. When that first token is already the whole answer (EOS, a stop
 * string, or max_tokens 1), the route answers from here. An attempt after a broken stream sends the tokens the client
 * already has as {@code resume_token_ids}: the node computes their KV with the prompt's and samples the next one.
 */
public final class PrefillCall implements Processor {

    private final NodeClient client;
    private final Duration timeout;
    private final InFlightMigrations migrations;
    private final OpenAiResponses responses;

    public PrefillCall(NodeClient client, Duration timeout, InFlightMigrations migrations) {
        this.client = client;
        this.timeout = timeout;
        this.migrations = migrations;
        this.responses = new OpenAiResponses(client.json());
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        ProxyCall call = ProxyCall.of(exchange);
        // a client that leaves ends the prefill at once (the engine aborts it and frees its blocks), or, if it has
        // answered, the lease is freed by the finally step rather than at its expiry
        ClientDisconnect.onClose(exchange, call::clientLeft);
        call.requireClient("prefill");
        String node = call.prefill.url();
        ObjectNode body = call.request.body().deepCopy();
        body.put("stream", false);
        body.remove("stream_options");
        body.remove("max_completion_tokens");
        // one token; after those the client already has when an answer resumes here (they count against it)
        body.put("max_tokens", call.resumeIds.length + 1);
        call.putResumeIds(body);
        NodeClient.Reply reply;
        try {
            reply = client.post(node, call.request.kind().path(), client.json().writeValueAsBytes(body), timeout,
                    call.cancel);
        } catch (ClientGoneException e) {
            call.prefill.close();
            throw e;
        } catch (NodeFailure e) {
            call.prefill.fail(e.getMessage());
            throw e;
        }
        if (reply.status() != 200) {
            call.prefill.complete();
            throw client.clientError(reply);
        }
        JsonNode answer;
        try {
            answer = client.json().readTree(reply.body());
        } catch (IOException e) {
            call.prefill.fail("invalid JSON");
            throw new NodeFailure(node, "answered with invalid JSON", e);
        }
        JsonNode handOff = answer.path("distserve");
        if (!handOff.isObject() || !handOff.path("session_id").isTextual()) {
            call.prefill.fail("no distserve hand-off");
            throw new NodeFailure(node, "answered without a KV hand-off: is it started with --role Prefill?", null);
        }
        call.prefill.complete();
        call.prefillAnswer = answer;
        call.leaseSettled = false;
        call.firstChunkSent = false;
        call.answerIds.add(handOff.path("first_token_id").asInt());
        migrations.started(handOff.path("session_id").asText(), node, handOff.path("engine_id").asText());
        JsonNode choice = answer.path("choices").path(0);
        call.prefillText = call.request.kind() == RequestKind.CHAT
                ? choice.path("message").path("content").asText("") : choice.path("text").asText("");
        call.promptTokens = answer.path("usage").path("prompt_tokens").asInt();
        String finish = choice.path("finish_reason").asText("");
        boolean wholeAnswer = "stop".equals(finish) || (call.request.maxTokensGiven()
                && call.request.sampling().maxTokens() <= call.resumeIds.length + 1);
        exchange.setProperty(ProxyCall.DONE_AT_PREFILL, wholeAnswer);
        if (!wholeAnswer && call.request.stream()) {
            sendFirstToken(exchange, call);
        }
    }

    /**
     * The client sees the first token as soon as the prefill answers. A token that is only part of a character
     * (its text holds U+FFFD) is not sent early: the decode stream brings it whole.
     */
    private void sendFirstToken(Exchange exchange, ProxyCall call) throws IOException {
        if (call.prefillText.isEmpty() || call.prefillText.indexOf('\uFFFD') >= 0) {
            call.prefillText = "";
            return;
        }
        var sse = ProxyReplies.openStream(exchange, call, call::clientLeft);
        sse.send(client.json().writeValueAsString(responses.chunk(call.request.kind(), call.id, call.created,
                modelOf(call), call.prefillText, !call.roleSent, null)));
        call.roleSent = true;
        call.firstChunkSent = true;
    }

    static String modelOf(ProxyCall call) {
        return call.prefillAnswer.path("model").asText(call.model() == null ? "" : call.model());
    }
}
