package io.distserve.processors.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.RequestKind;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeStatus;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.camel.Exchange;
import org.apache.camel.impl.DefaultCamelContext;
import org.apache.camel.support.DefaultExchange;
import org.junit.jupiter.api.Test;

/** When DistServe gives a request another attempt, and what that attempt carries. */
class NextAttemptTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final String PREFILL = "http://127.0.0.1:1";
    static final String DECODE = "http://127.0.0.1:2";

    final NodeRegistry registry = NodeRegistry.inMemory();
    final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    final InFlightMigrations inFlight = new InFlightMigrations();
    final NextAttempt attempts = new NextAttempt(2, inFlight, meters);
    final Exchange exchange = new DefaultExchange(new DefaultCamelContext());

    NextAttemptTest() {
        registry.register(PREFILL, new NodeStatus(NodeRole.Prefill, List.of("m"), null));
        registry.register(DECODE, new NodeStatus(NodeRole.Decode, List.of("m"), null));
    }

    /** A request past its prefill (first token 7) whose decode streamed {@code streamed} tokens more. */
    ProxyCall call(String body, int... streamed) throws Exception {
        ProxyCall call = new ProxyCall(new OpenAiRequestParser(JSON).parse(RequestKind.COMPLETION,
                body.getBytes(StandardCharsets.UTF_8)), "cmpl-1", 1);
        call.prefill = registry.acquire(PREFILL).orElseThrow();
        call.decode = registry.acquire(DECODE).orElseThrow();
        call.triedPrefill.add(PREFILL);
        call.triedDecode.add(DECODE);
        call.prefillAnswer = JSON.readTree("{\"distserve\":{\"session_id\":\"s1\",\"engine_id\":\"e\"}}");
        inFlight.started("s1", PREFILL, "e");
        call.answerIds.add(7);
        exchange.setProperty(ProxyCall.PROPERTY, call);
        for (int t : streamed) {
            call.answerIds.add(t);
        }
        return call;
    }

    double moves(String cause) {
        var c = meters.find("distserve.proxy.request.migrations").tag("cause", cause).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void aBrokenStreamGoesOnWithEveryTokenTheClientHasAtMostMaxMigrationsTimes() throws Exception {
        ProxyCall call = call("{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":10,\"stream\":true}", 8, 9);
        assertThat(attempts.streamAgain(exchange, call, "stream_broke", "reset")).isTrue();
        assertThat(call.resumeIds).containsExactly(7, 8, 9);
        assertThat(exchange.getProperty(ProxyCall.ATTEMPT_DUE, Boolean.class)).isTrue();
        assertThat(call.triedPrefill).as("any prefill node may serve it again").isEmpty();
        assertThat(call.triedDecode).as("not the decode node that broke").containsExactly(DECODE);
        assertThat(call.leaseSettled).isTrue();
        assertThat(inFlight.size()).isZero();
        assertThat(moves("stream_broke")).isEqualTo(1);

        attempts.process(exchange); // the route's step at the top of the next attempt
        assertThat(exchange.getProperty(ProxyCall.ATTEMPT_DUE, Boolean.class)).isFalse();
        assertThat(call.nextAttempt).isNull();

        call.answerIds.add(10);
        assertThat(attempts.streamAgain(exchange, call, "error_event", "boom")).isTrue();
        assertThat(call.resumeIds).containsExactly(7, 8, 9, 10);
        attempts.process(exchange);
        assertThat(attempts.streamAgain(exchange, call, "stream_broke", "again")).as("past maxMigrations").isFalse();
        assertThat(exchange.getProperty(ProxyCall.ATTEMPT_DUE, Boolean.class)).isFalse();
        assertThat(call.migrations).isEqualTo(2);
    }

    @Test
    void noAttemptWhenNothingIsLeftToGenerateOrTheClientHasGone() throws Exception {
        ProxyCall done = call("{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":3,\"stream\":true}", 8, 9);
        assertThat(attempts.streamAgain(exchange, done, "early_end", "no [DONE]")).isFalse();
        ProxyCall gone = call("{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":30,\"stream\":true}", 8);
        gone.clientLeft();
        assertThat(attempts.streamAgain(exchange, gone, "stream_broke", "reset")).isFalse();
        assertThat(attempts.answerAgain(exchange, gone, "reset")).isFalse();
        assertThat(exchange.getProperty(ProxyCall.ATTEMPT_DUE)).isNull();
    }

    @Test
    void aBrokenWholeAnswerRunsAgainFromScratch() throws Exception {
        ProxyCall call = call("{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":10}");
        assertThat(attempts.answerAgain(exchange, call, "reset")).isTrue();
        assertThat(call.resumeIds).isEmpty();
        assertThat(call.answerIds).isEmpty();
        assertThat(moves("answer_broke")).isEqualTo(1);
    }

    @Test
    void aLostLeaseIsPrefilledAgainOnceOnAnyNodeAndTheSameDecodeNodeMayTakeIt() throws Exception {
        ProxyCall stream = call("{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":10,\"stream\":true}");
        assertThat(attempts.prefillAgain(exchange, stream, "kv_lease_gone")).isTrue();
        assertThat(stream.resumeIds).as("the prefill's token may have reached the client").containsExactly(7);
        assertThat(stream.triedDecode).isEmpty();
        assertThat(stream.triedPrefill).isEmpty();
        attempts.process(exchange);
        assertThat(attempts.prefillAgain(exchange, stream, "kv_lease_gone")).as("once").isFalse();
        assertThat(moves("kv_lease_lost")).isEqualTo(1);

        ProxyCall whole = call("{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":10}");
        assertThat(attempts.prefillAgain(exchange, whole, "migration_failed")).isTrue();
        assertThat(whole.resumeIds).isEmpty();
    }
}
