package io.distserve.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Instant;
import org.junit.jupiter.api.Test;

class HealthStateTest {

    private static final Instant T0 = Instant.parse("2025-01-01T00:00:00Z");
    private static final Instant T1 = T0.plusSeconds(5);
    private static final Instant T2 = T0.plusSeconds(10);
    private static final Instant T3 = T0.plusSeconds(15);

    @Test
    void staysHealthyBelowTheThresholdButRemembersTheError() {
        HealthState s = HealthState.healthy(T0).afterFailure("refused", T1, 2);
        assertThat(s.status()).isEqualTo(HealthStatus.HEALTHY);
        assertThat(s.since()).isEqualTo(T0);
        assertThat(s.consecutiveFailures()).isEqualTo(1);
        assertThat(s.lastError()).isEqualTo("refused");
    }

    @Test
    void goesDownAtTheThresholdAndKeepsItsSinceWhileDown() {
        HealthState down = HealthState.healthy(T0).afterFailure("a", T1, 2).afterFailure("b", T2, 2);
        assertThat(down.status()).isEqualTo(HealthStatus.UNHEALTHY);
        assertThat(down.since()).isEqualTo(T2);
        HealthState still = down.afterFailure("c", T3, 2);
        assertThat(still.status()).isEqualTo(HealthStatus.UNHEALTHY);
        assertThat(still.since()).isEqualTo(T2);
        assertThat(still.consecutiveFailures()).isEqualTo(3);
        assertThat(still.lastError()).isEqualTo("c");
    }

    @Test
    void thresholdOneTakesANodeOutOnTheFirstFailure() {
        assertThat(HealthState.healthy(T0).afterFailure("x", T1, 1).isHealthy()).isFalse();
    }

    @Test
    void oneSuccessReadmitsAndClearsTheError() {
        HealthState down = HealthState.healthy(T0).afterFailure("x", T1, 1);
        HealthState up = down.afterSuccess(T2);
        assertThat(up.status()).isEqualTo(HealthStatus.HEALTHY);
        assertThat(up.since()).isEqualTo(T2);
        assertThat(up.consecutiveFailures()).isZero();
        assertThat(up.lastError()).isNull();
    }

    @Test
    void aSuccessBelowTheThresholdResetsTheStreakWithoutChangingSince() {
        HealthState s = HealthState.healthy(T0).afterFailure("x", T1, 2).afterSuccess(T2);
        assertThat(s).isEqualTo(HealthState.healthy(T0));
        assertThat(s.afterFailure("y", T3, 2).isHealthy()).isTrue();
    }

    @Test
    void refusesAThresholdBelowOne() {
        assertThatThrownBy(() -> HealthState.healthy(T0).afterFailure("x", T1, 0))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
