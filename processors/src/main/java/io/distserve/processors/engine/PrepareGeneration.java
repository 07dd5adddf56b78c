package io.distserve.processors.engine;

import io.distserve.processors.openai.InferenceRequest;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/** Route step "tokenize": the validated request becomes an engine request (see {@link EngineNode#prepare}). */
public final class PrepareGeneration implements Processor {

    private final EngineNode node;

    public PrepareGeneration(EngineNode node) {
        this.node = node;
    }

    @Override
    public void process(Exchange exchange) {
        InferenceRequest request = exchange.getIn().getBody(InferenceRequest.class);
        exchange.getIn().setBody(node.prepare(request));
    }
}
