package io.distserve.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The client against a scripted server: timings, the concurrency cap, failures of every kind. */
class ServingClientTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    private static List<byte[]> bodies(int n) {
        return Collections.nCopies(n, "{\"model\":\"m\",\"prompt\":[1,2,3],\"stream\":true}"
                .getBytes(StandardCharsets.UTF_8));
    }

    private static ServingClient.Run run(ScriptedServer s, int n, double rate, Integer cap) throws Exception {
        try (ServingClient c = new ServingClient(URI.create(s.url()), null, cap == null ? n : cap,
                Duration.ofSeconds(10), JSON)) {
            // as bench serving's --warmup 1: the first request also warms the client (class loading, JIT)
            c.run("/v1/completions", bodies(1), new int[1], new double[1], 1, new ServingClient.Progress());
            s.maxInFlight.set(0);
            s.received.set(1000); // scripts see the measured requests from 1000 on (i % 3, i % 6 keep their pattern)
            return c.run("/v1/completions", bodies(n), new int[n], ArrivalSchedule.offsets(n, rate, 1, 3), cap,
                    new ServingClient.Progress());
        }
    }

    @Test
    void timingsFollowTheServersScript() throws Exception {
        try (ScriptedServer s = new ScriptedServer(i -> ScriptedServer.Script.ok(6, 120, 30))) {
            ServingClient.Run run = run(s, 4, Double.POSITIVE_INFINITY, null);
            ServingReport r = ServingReport.of("/v1/completions", Double.POSITIVE_INFINITY, 1, null, run.outcomes(),
                    run.durationNanos(), Slo.NONE);
            assertThat(r.completed()).isEqualTo(4);
            // timer-driven on both sides: a few ms of jitter on a shared 2-core machine
            assertThat(r.ttftMs().median()).isCloseTo(120, within(40.0));
            assertThat(r.itlMs().median()).isCloseTo(30, within(15.0));
            assertThat(r.tpotMs().mean()).isCloseTo(30, within(15.0));
            assertThat(r.outputTokens()).as("from the usage chunk").isEqualTo(24);
            assertThat(r.inputTokens()).isEqualTo(20);
            assertThat(run.outcomes()).allSatisfy(o -> assertThat(o.itlNanos()).hasSize(5));
        }
    }

    @Test
    void theConcurrencyCapIsNeverExceeded() throws Exception {
        try (ScriptedServer s = new ScriptedServer(i -> ScriptedServer.Script.ok(3, 20, 10))) {
            ServingClient.Run run = run(s, 24, Double.POSITIVE_INFINITY, 3);
            assertThat(run.outcomes()).allMatch(RequestOutcome::ok);
            assertThat(s.maxInFlight.get()).isEqualTo(3);
            assertThat(run.maxInFlight()).isEqualTo(3);
        }
    }

    @Test
    void openLoopArrivalsFollowTheRate() throws Exception {
        try (ScriptedServer s = new ScriptedServer(i -> ScriptedServer.Script.ok(2, 5, 5))) {
            ServingClient.Run run = run(s, 40, 40.0, null);
            // 39 gaps of mean 25 ms with this seed's schedule: the run lasts about its last arrival plus one answer
            double last = ArrivalSchedule.offsets(40, 40.0, 1, 3)[39];
            assertThat(run.durationNanos() / 1e9).isCloseTo(last + 0.02, within(0.15));
        }
    }

    @Test
    void failuresAreCountedWithTheirFirstMessages() throws Exception {
        try (ScriptedServer s = new ScriptedServer(i -> i % 3 == 0 ? new ScriptedServer.Script(503, 0, 0, 0, false,
                false) : i % 3 == 1 ? ScriptedServer.Script.ok(4, 5, 5)
                : i % 6 == 2 ? new ScriptedServer.Script(200, 4, 5, 5, true, false)
                : new ScriptedServer.Script(200, 8, 5, 5, false, true))) {
            ServingClient.Run run = run(s, 30, Double.POSITIVE_INFINITY, 5);
            ServingReport r = ServingReport.of("/v1/completions", Double.POSITIVE_INFINITY, 1, 5, run.outcomes(),
                    run.durationNanos(), Slo.NONE);
            assertThat(r.completed()).isEqualTo(10);
            assertThat(r.failed()).isEqualTo(20);
            assertThat(r.errors()).containsEntry("HTTP 503: scripted failure", 10)
                    .containsEntry("SSE error event: scripted mid-stream failure", 5);
            List<String> kinds = new ArrayList<>(r.errors().keySet());
            assertThat(kinds).anySatisfy(k -> assertThat(k).containsAnyOf("stream broke", "without [DONE]"));
            assertThat(r.table()).contains("Failed requests:                         20")
                    .contains("10 x HTTP 503: scripted failure");
        }
    }
}
