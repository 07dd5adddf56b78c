package io.distserve.processors.engine;

import io.distserve.processors.http.Replies;
import io.distserve.processors.openai.OpenAiResponses;
import java.util.List;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/** {@code GET /v1/models}: the one model this node serves, in OpenAI's list shape. */
public final class ListModels implements Processor {

    private final EngineNode node;
    private final OpenAiResponses responses;
    private final long created = System.currentTimeMillis() / 1000;

    public ListModels(EngineNode node, OpenAiResponses responses) {
        this.node = node;
        this.responses = responses;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        Replies.json(exchange, 200, responses.json().writeValueAsString(
                responses.models(List.of(node.modelName()), created, "distserve")));
    }
}
