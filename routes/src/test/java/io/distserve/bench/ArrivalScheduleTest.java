package io.distserve.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/** The arrival process has the asked rate and shape (statistical tests with fixed seeds). */
class ArrivalScheduleTest {

    private static double[] gaps(double[] offsets) {
        double[] g = new double[offsets.length - 1];
        for (int i = 1; i < offsets.length; i++) {
            g[i - 1] = offsets[i] - offsets[i - 1];
        }
        return g;
    }

    private static double mean(double[] v) {
        double s = 0;
        for (double x : v) {
            s += x;
        }
        return s / v.length;
    }

    private static double cv(double[] v) {
        double m = mean(v);
        double s = 0;
        for (double x : v) {
            s += (x - m) * (x - m);
        }
        return Math.sqrt(s / (v.length - 1)) / m;
    }

    @Test
    void poissonArrivalsHaveTheRateAndExponentialGaps() {
        double[] t = ArrivalSchedule.offsets(20_001, 8.0, 1.0, 42);
        assertThat(t[0]).isZero();
        double[] g = gaps(t);
        // 20,000 exponential gaps of mean 1/8: the sample mean is within 3% (its standard error is 0.7%)
        assertThat(mean(g)).isCloseTo(0.125, within(0.125 * 0.03));
        assertThat(cv(g)).isCloseTo(1.0, within(0.03)); // exponential: coefficient of variation 1
        assertThat(t[t.length - 1] / (t.length - 1)).isCloseTo(0.125, within(0.004));
        for (double x : g) {
            assertThat(x).isGreaterThanOrEqualTo(0);
        }
    }

    @Test
    void burstinessIsTheGammaShape() {
        // gamma(k): the rate stays, the coefficient of variation is 1 / sqrt(k)
        for (double k : new double[] {0.25, 0.5, 4.0}) {
            double[] g = gaps(ArrivalSchedule.offsets(40_001, 2.0, k, 7));
            assertThat(mean(g)).as("mean gap, burstiness %s", k).isCloseTo(0.5, within(0.5 * 0.04));
            assertThat(cv(g)).as("cv, burstiness %s", k).isCloseTo(1 / Math.sqrt(k), within(0.06 / Math.sqrt(k)));
        }
    }

    @Test
    void infiniteRateSendsEverythingAtOnceAndTheSeedRepeats() {
        assertThat(ArrivalSchedule.offsets(5, Double.POSITIVE_INFINITY, 1, 1)).containsOnly(0.0);
        assertThat(ArrivalSchedule.offsets(100, 3, 1, 9)).isEqualTo(ArrivalSchedule.offsets(100, 3, 1, 9));
        assertThat(ArrivalSchedule.offsets(100, 3, 1, 9)).isNotEqualTo(ArrivalSchedule.offsets(100, 3, 1, 10));
        assertThatThrownBy(() -> ArrivalSchedule.offsets(5, 0, 1, 1)).hasMessageContaining("rate");
        assertThatThrownBy(() -> ArrivalSchedule.offsets(5, 1, -2, 1)).hasMessageContaining("burstiness");
    }
}
