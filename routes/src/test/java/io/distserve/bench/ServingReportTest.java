package io.distserve.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The metrics of known timings are exact: TTFT, ITL, TPOT, percentiles (numpy's), throughput, goodput. */
class ServingReportTest {

    private static final long MS = 1_000_000;

    private static RequestOutcome ok(long ttftMs, long[] gapsMs, int tokens, int prompt) {
        long[] gaps = new long[gapsMs.length];
        long e2e = ttftMs;
        for (int i = 0; i < gaps.length; i++) {
            gaps[i] = gapsMs[i] * MS;
            e2e += gapsMs[i];
        }
        return new RequestOutcome(true, null, ttftMs * MS, gaps, e2e * MS, prompt, tokens, 0, prompt);
    }

    @Test
    void percentilesInterpolateLikeNumpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [50, 90, 99]) == [3.0, 7.6, 9.76]
        Stats s = Stats.of(new double[] {4, 1, 10, 3, 2});
        assertThat(s.median()).isEqualTo(3.0);
        assertThat(s.p90()).isCloseTo(7.6, within(1e-12));
        assertThat(s.p99()).isCloseTo(9.76, within(1e-12));
        assertThat(s.mean()).isEqualTo(4.0);
        assertThat(Stats.of(new double[] {7}).p99()).isEqualTo(7.0);
        assertThat(Stats.of(new double[0]).mean()).isNaN();
    }

    @Test
    void knownTimingsGiveExactNumbers() {
        List<RequestOutcome> outcomes = new ArrayList<>();
        outcomes.add(ok(100, new long[] {10, 10, 10}, 4, 50));      // TPOT (130 - 100) / 3 = 10
        outcomes.add(ok(300, new long[] {20, 40}, 3, 70));          // TPOT 60 / 2 = 30
        outcomes.add(ok(50, new long[0], 1, 30));                   // one token: no TPOT, no ITL
        outcomes.add(RequestOutcome.failed("HTTP 503: no healthy Decode node", 5 * MS, 40));
        ServingReport r = ServingReport.of("/v1/completions", 2.0, 1.0, null, outcomes, 2_000 * MS,
                Slo.parse(List.of("ttft:200", "tpot:20")));
        assertThat(r.completed()).isEqualTo(3);
        assertThat(r.failed()).isEqualTo(1);
        assertThat(r.inputTokens()).isEqualTo(150);
        assertThat(r.outputTokens()).isEqualTo(8);
        assertThat(r.requestThroughput()).isEqualTo(1.5);
        assertThat(r.outputThroughput()).isEqualTo(4.0);
        assertThat(r.totalTokenThroughput()).isEqualTo(79.0);
        assertThat(r.ttftMs().mean()).isEqualTo(150.0);
        assertThat(r.ttftMs().median()).isEqualTo(100.0);
        assertThat(r.tpotMs().count()).isEqualTo(2);
        assertThat(r.tpotMs().mean()).isEqualTo(20.0);
        assertThat(r.itlMs().count()).isEqualTo(5);
        assertThat(r.itlMs().mean()).isEqualTo(18.0);
        assertThat(r.itlMs().median()).isEqualTo(10.0);
        assertThat(r.e2elMs().p99()).isCloseTo(130 + (360 - 130) * 0.98, within(1e-9));
        // good: the first (ttft 100, tpot 10) and the third (ttft 50, no tpot); the second misses both
        assertThat(r.goodput()).isEqualTo(1.0);
        assertThat(r.sloAttainment()).isEqualTo(50.0);
        assertThat(r.errors()).containsEntry("HTTP 503: no healthy Decode node", 1);
        String table = r.table();
        assertThat(table).contains("Successful requests:                     3")
                .contains("Request goodput (req/s):                 1.00").contains("P90 TTFT (ms):")
                .contains("1 x HTTP 503: no healthy Decode node");
    }

    @Test
    void withoutSlosThereIsNoGoodputAndErrorsAreCappedByKind() {
        List<RequestOutcome> outcomes = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            outcomes.add(RequestOutcome.failed("error kind " + (i % 7), MS, 1));
        }
        ServingReport r = ServingReport.of("/v1/completions", Double.POSITIVE_INFINITY, 1, 4, outcomes, MS, Slo.NONE);
        assertThat(r.goodput()).isNull();
        assertThat(r.errors()).hasSize(ServingReport.ERRORS_KEPT + 1).containsEntry("error kind 0", 2)
                .containsEntry("(other errors)", 2);
        assertThat(r.table()).contains("Request rate configured (RPS):           inf")
                .contains("Maximum request concurrency:             4");
    }

    @Test
    void slosParseAndRefuseNonsense() {
        Slo s = Slo.parse(List.of("TTFT:2000", "tpot=25", "e2el:9000.5"));
        assertThat(s).isEqualTo(new Slo(2000.0, 25.0, 9000.5));
        assertThatThrownBy(() -> Slo.parse(List.of("itl:5"))).hasMessageContaining("ttft, tpot and e2el");
        assertThatThrownBy(() -> Slo.parse(List.of("ttft"))).hasMessageContaining("KEY:MS");
        assertThatThrownBy(() -> Slo.parse(List.of("ttft:-1"))).hasMessageContaining("positive");
        assertThatThrownBy(() -> Slo.parse(List.of("ttft:fast"))).hasMessageContaining("not a number");
    }
}
