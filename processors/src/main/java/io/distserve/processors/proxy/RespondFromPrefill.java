package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.OpenAiResponses;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Route step for a request whose first token was the whole answer (EOS, a stop string, max_tokens 1): the client
 * gets the prefill's answer; no decode node is involved (the release step frees the lease).
 */
public final class RespondFromPrefill implements Processor {

    private final NodeClient client;
    private final OpenAiResponses responses;
    private final RequestMetrics metrics;

    public RespondFromPrefill(NodeClient client, RequestMetrics metrics) {
        this.client = client;
        this.responses = new OpenAiResponses(client.json());
        this.metrics = metrics;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        ProxyCall call = ProxyCall.of(exchange);
        ObjectNode answer = call.prefillAnswer.deepCopy();
        answer.remove("distserve");
        answer.put("id", call.id);
        answer.put("created", call.created);
        JsonNode usage = answer.path("usage");
        call.completionTokens = usage.path("completion_tokens").asInt();
        if (!call.request.stream()) {
            ProxyReplies.json(exchange, metrics, 200, client.json().writeValueAsString(answer));
            return;
        }
        String model = PrefillCall.modelOf(call);
        String finish = answer.path("choices").path(0).path("finish_reason").asText("stop");
        SseResponse sse = ProxyReplies.openStream(exchange, call, () -> { });
        if (!call.prefillText.isEmpty() && !call.firstChunkSent) {
            sse.send(client.json().writeValueAsString(responses.chunk(call.request.kind(), call.id, call.created,
                    model, call.prefillText, !call.roleSent, null)));
            call.roleSent = true;
        }
        sse.send(client.json().writeValueAsString(responses.chunk(call.request.kind(), call.id, call.created,
                model, call.roleSent ? null : "", !call.roleSent, finish)));
        if (call.request.includeUsage()) {
            sse.send(client.json().writeValueAsString(responses.usageChunk(call.request.kind(), call.id,
                    call.created, model, usage.path("prompt_tokens").asInt(), call.completionTokens,
                    usage.path("prompt_tokens_details").path("cached_tokens").asInt())));
        }
        sse.end();
        metrics.requestEnded(exchange.getFromRouteId(), 200);
    }
}
