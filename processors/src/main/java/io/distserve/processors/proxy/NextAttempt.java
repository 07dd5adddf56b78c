package io.distserve.processors.proxy;

import io.micrometer.core.instrument.MeterRegistry;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * DistServe's second chances, and the route step that starts each attempt ({@code nextAttempt} in
 * proxy.camel.yaml: the route loops while one is due). An attempt is a prefill, then a decode. Another one is due
 * when
 * <ul>
 *   <li>a decode stream broke (reset, an early end, an error event, no byte within the timeout): the prompt and the
 *       tokens the client already has are prefilled again, as {@code resume_token_ids}, on any Prefill node, and
 *       decoded on a Decode node not tried yet; the client's stream goes on as if nothing happened;</li>
 *   <li>a whole (non-stream) answer broke: the client has nothing yet, so the request runs again from scratch;</li>
 *   <li>the decode engine could not take the KV ({@code kv_lease_gone}, {@code migration_failed}: the prefill
 *       engine died, the lease expired, or a decode engine took it and died): prefilled again, once.</li>
 * </ul>
 * At most {@code maxMigrations} attempts after the first, and none once the client has gone or nothing is left to
 * generate. Each is counted ({@code distserve_proxy_request_migrations_total{cause}}) and logged in one INFO line.
 */
public final class NextAttempt implements Processor {

    private static final Logger LOG = LoggerFactory.getLogger(NextAttempt.class);

    private final int maxMigrations;
    private final InFlightMigrations migrations;
    private final MeterRegistry meters;

    public NextAttempt(int maxMigrations, InFlightMigrations migrations, MeterRegistry meters) {
        this.maxMigrations = maxMigrations;
        this.migrations = migrations;
        this.meters = meters;
    }

    /** The route step at the top of each attempt: no further one is due until a step says so. */
    @Override
    public void process(Exchange exchange) {
        exchange.setProperty(ProxyCall.ATTEMPT_DUE, false);
        ProxyCall.of(exchange).nextAttempt = null;
    }

    /** A decode stream broke: on with the tokens the client has, if it may. */
    boolean streamAgain(Exchange exchange, ProxyCall call, String cause, String message) {
        int max = call.request.sampling().maxTokens();
        if (call.request.maxTokensGiven() && call.answerIds.size() >= max) {
            return false; // nothing left to generate (the break came after the last token)
        }
        if (!due(call)) {
            return false;
        }
        call.resumeIds = ids(call);
        call.triedPrefill.clear(); // the prefill nodes are fine; the one that has the prompt cached is the best
        schedule(exchange, call, cause, message);
        return true;
    }

    /** A whole answer broke: the client has nothing of it, so from scratch. */
    boolean answerAgain(Exchange exchange, ProxyCall call, String message) {
        if (!due(call)) {
            return false;
        }
        call.answerIds.clear();
        call.resumeIds = new int[0];
        call.triedPrefill.clear();
        schedule(exchange, call, "answer_broke", message);
        return true;
    }

    /**
     * The decode engine could not take the KV: prefilled again, once; a stream keeps what the client already has
     * (the prefill's token may have gone out).
     */
    boolean prefillAgain(Exchange exchange, ProxyCall call, String message) {
        if (call.prefilledAgain || !due(call)) {
            return false;
        }
        call.prefilledAgain = true;
        if (call.request.stream()) {
            call.resumeIds = ids(call);
        } else {
            call.answerIds.clear();
            call.resumeIds = new int[0];
        }
        // the decode node did nothing wrong; nor, maybe, the prefill node (the lease can be gone with a decode node
        // that died after its pull): any may serve, and a dead one fails before answering (the route tries another)
        call.triedDecode.remove(call.decode.url());
        call.triedPrefill.clear();
        schedule(exchange, call, "kv_lease_lost", message);
        return true;
    }

    private boolean due(ProxyCall call) {
        return call.migrations < maxMigrations && !call.clientGone();
    }

    private static int[] ids(ProxyCall call) {
        return call.answerIds.stream().mapToInt(Integer::intValue).toArray();
    }

    private void schedule(Exchange exchange, ProxyCall call, String cause, String message) {
        call.migrations++;
        call.nextAttempt = cause;
        call.earlierNodes.add("Decode=" + call.decode.url());
        // the lease of the attempt that broke is settled (the decode took it, or it is gone)
        migrations.ended(call.prefillAnswer.path("distserve").path("session_id").asText());
        call.leaseSettled = true;
        exchange.setProperty(ProxyCall.ATTEMPT_DUE, true);
        LOG.info("{} {} moves on from prefill {} / decode {} carrying {} tokens ({}: {})", call.id,
                call.request.stream() ? "stream" : "request", call.prefill.url(), call.decode.url(),
                call.resumeIds.length, cause, message);
        if (meters != null) {
            meters.counter("distserve.proxy.request.migrations", "cause", cause).increment();
        }
    }
}
