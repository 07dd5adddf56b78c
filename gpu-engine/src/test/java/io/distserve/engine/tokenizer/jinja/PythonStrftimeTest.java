package io.distserve.engine.tokenizer.jinja;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import org.junit.jupiter.api.Test;

class PythonStrftimeTest {

    private static final ZonedDateTime T = ZonedDateTime.of(2024, 7, 4, 9, 5, 3, 0, ZoneOffset.UTC);

    @Test
    void formatsLikePythonInTheCLocale() {
        // python: datetime(2024, 7, 4, 9, 5, 3).strftime(...)
        assertThat(PythonStrftime.format("%d %b %Y", T)).isEqualTo("04 Jul 2024");
        assertThat(PythonStrftime.format("%-d %B %Y", T)).isEqualTo("4 July 2024");
        assertThat(PythonStrftime.format("%A %a %H:%M:%S %I%p %j %y %m %%", T))
                .isEqualTo("Thursday Thu 09:05:03 09AM 186 24 07 %");
        assertThat(PythonStrftime.format("%Y-%m-%d", T)).isEqualTo("2024-07-04");
    }

    @Test
    void unknownDirectivesAreErrors() {
        assertThatThrownBy(() -> PythonStrftime.format("%Q", T)).hasMessageContaining("%Q");
        assertThatThrownBy(() -> PythonStrftime.format("100%", T)).hasMessageContaining("lone '%'");
    }
}
