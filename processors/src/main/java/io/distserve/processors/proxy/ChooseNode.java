package io.distserve.processors.proxy;

import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.routing.NodeRouter;
import io.distserve.registry.NodeLease;
import io.distserve.registry.NodeRole;
import java.util.Set;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Route steps "route prefill" / "route decode" / "route hybrid": the routing strategy picks a healthy node of the
 * role serving the model, never one this request already tried; the pick is counted in flight until released.
 * None left: 503; a model that no node in the table serves at all: 404 model_not_found, as an engine answers.
 */
public final class ChooseNode implements Processor {

    private final NodeRouter router;
    private final NodeRole role;

    public ChooseNode(NodeRouter router, NodeRole role) {
        this.router = router;
        this.role = role;
    }

    @Override
    public void process(Exchange exchange) {
        ProxyCall call = ProxyCall.of(exchange);
        Set<String> tried = switch (role) {
            case Prefill -> call.triedPrefill;
            case Decode -> call.triedDecode;
            case Hybrid -> call.triedHybrid;
        };
        NodeLease lease = router.acquire(call.model(), role, tried, call.prompt()).orElseThrow(() -> router.knows(call.model())
                ? OpenAiException.unavailable((tried.isEmpty() ? "No healthy " : "No other healthy ") + role
                        + " node serves " + (call.model() == null ? "any model" : "model '" + call.model() + "'") + ".")
                : OpenAiException.modelNotFound(call.model(), "no node of this proxy serves it (GET /v1/models "
                        + "lists the models served)."));
        tried.add(lease.url());
        NodeLease previous;
        switch (role) {
            case Prefill -> {
                previous = call.prefill;
                call.prefill = lease;
            }
            case Decode -> {
                previous = call.decode;
                call.decode = lease;
            }
            default -> {
                previous = call.hybrid;
                call.hybrid = lease;
            }
        }
        if (previous != null) {
            previous.close(); // the node tried before (its outcome is already recorded)
        }
    }
}
