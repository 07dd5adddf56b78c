package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.registry.NodeLease;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The route's finally step, on every path: a prefill lease that no decode engine took is freed on the prefill
 * node, the nodes' in-flight counts are released, and the request's one INFO line is logged.
 */
public final class ReleaseCall implements Processor {

    private static final Logger LOG = LoggerFactory.getLogger("io.distserve.requests");

    private final NodeClient client;
    private final Duration timeout;
    private final InFlightMigrations migrations;
    private final ExecutorService background;

    public ReleaseCall(NodeClient client, Duration timeout, InFlightMigrations migrations, ExecutorService background) {
        this.client = client;
        this.timeout = timeout;
        this.migrations = migrations;
        this.background = background;
    }

    @Override
    public void process(Exchange exchange) {
        ProxyCall call = exchange.getProperty(ProxyCall.PROPERTY, ProxyCall.class);
        if (call == null) {
            return;
        }
        if (call.prefillAnswer != null) {
            String session = call.prefillAnswer.path("distserve").path("session_id").asText();
            migrations.ended(session);
            if (!call.leaseSettled) {
                freeLease(call.prefill.url(), call.prefillAnswer.path("distserve").path("engine_id").asText(), session);
            }
        }
        List<String> nodes = new ArrayList<>(call.earlierNodes); // the decode nodes of attempts that broke
        for (NodeLease lease : new NodeLease[] {call.hybrid, call.prefill, call.decode}) {
            if (lease != null) {
                nodes.add(lease.role() + "=" + lease.url());
                lease.close();
            }
        }
        Throwable failure = exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class);
        if (failure == null) {
            failure = exchange.getException();
        }
        LOG.info("{} proxy nodes={} stream={} prompt={} completion={} latency={}ms{}", call.id, nodes,
                call.request.stream(), count(call.promptTokens), count(call.completionTokens),
                (System.nanoTime() - call.startNanos) / 1_000_000,
                failure == null ? "" : " failed=" + failure.getMessage());
    }

    /** A token count for the log line: "-" while no node reported it. */
    private static Object count(int tokens) {
        return tokens < 0 ? "-" : tokens;
    }

    /** Best effort, off the request's path: the lease's expiry is the backstop. */
    void freeLease(String prefillUrl, String engineId, String session) {
        ObjectNode body = client.json().createObjectNode();
        body.put("remote_engine_id", engineId);
        body.put("remote_session_id", session);
        background.execute(() -> {
            try {
                client.postJson(prefillUrl, "/distserve/free_cache", body, timeout);
            } catch (Exception e) {
                LOG.warn("could not free lease {} on {}: {}; it will expire", session, prefillUrl, e.getMessage());
            }
        });
    }
}
