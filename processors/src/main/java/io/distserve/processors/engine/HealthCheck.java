package io.distserve.processors.engine;

import io.distserve.processors.http.Replies;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/** {@code GET /health}: 200 while serving, 503 while loading, draining or stopped. */
public final class HealthCheck implements Processor {

    private final EngineNode node;

    public HealthCheck(EngineNode node) {
        this.node = node;
    }

    @Override
    public void process(Exchange exchange) {
        EngineNode.State state = node.state();
        boolean up = state == EngineNode.State.SERVING;
        Replies.json(exchange, up ? 200 : 503, "{\"status\":\"" + state.name().toLowerCase() + "\"}");
    }
}
