package io.distserve.engine.sampling;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class StopCheckerTest {

    private static StopChecker checker(List<String> stop, List<Integer> stopIds, boolean ignoreEos) {
        SamplingParams p = new SamplingParams(0, 1, 0, 0, 1, null, 5, stop, stopIds, ignoreEos, true);
        return new StopChecker(p, List.of(2));
    }

    @Test
    void eosAndStopIdsEndTheSequenceUnlessEosIsIgnored() {
        StopChecker c = checker(List.of(), List.of(9), false);
        assertThat(c.isStopToken(2)).isTrue();
        assertThat(c.isStopToken(9)).isTrue();
        assertThat(c.isStopToken(3)).isFalse();
        StopChecker ignoring = checker(List.of(), List.of(9), true);
        assertThat(ignoring.isStopToken(2)).isFalse();
        assertThat(ignoring.isStopToken(9)).isTrue();
        assertThat(c.reachedLimit(4)).isFalse();
        assertThat(c.reachedLimit(5)).isTrue();
    }

    @Test
    void withoutStopStringsTextPassesStraightThrough() {
        StopChecker c = checker(List.of(), List.of(), false);
        assertThat(c.acceptText("abc")).isEqualTo(new StopChecker.TextStep("abc", false));
        assertThat(c.flush()).isEmpty();
    }

    @Test
    void aStopStringAcrossDeltasIsCutWithEverythingAfterIt() {
        StopChecker c = checker(List.of("END"), List.of(), false);
        StringBuilder out = new StringBuilder();
        for (String d : List.of("hello E", "N", "D and more")) {
            StopChecker.TextStep step = c.acceptText(d);
            out.append(step.emit());
            if (step.stopped()) {
                break;
            }
        }
        assertThat(out.toString()).isEqualTo("hello ");
        assertThat(c.stopped()).isTrue();
        assertThat(c.flush()).isEmpty();
    }

    @Test
    void onlyAPossibleStopPrefixIsHeldBackAndReleasedWhenItCannotMatch() {
        StopChecker c = checker(List.of("STOP", "xy"), List.of(), false);
        // "ab" cannot start a stop string: emitted at once.
        assertThat(c.acceptText("ab").emit()).isEqualTo("ab");
        // "cST" ends with "ST", a prefix of "STOP": held.
        assertThat(c.acceptText("cST").emit()).isEqualTo("c");
        // "STA" is not a prefix of anything any more.
        assertThat(c.acceptText("A").emit()).isEqualTo("STA");
        assertThat(c.acceptText("x").emit()).isEmpty();
        assertThat(c.flush()).isEqualTo("x");
    }

    @Test
    void theEarliestStopStringWinsAndTextBeforeItIsReleased() {
        StopChecker c = checker(List.of("long stop", "op"), List.of(), false);
        StopChecker.TextStep step = c.acceptText("a long stop");
        assertThat(step.stopped()).isTrue();
        assertThat(step.emit()).isEqualTo("a ");
    }

    @Test
    void streamedTextNeverContainsTheStopStringWhateverTheSplit() {
        String text = "one two three STOP four";
        for (int cut1 = 0; cut1 <= text.length(); cut1++) {
            for (int cut2 = cut1; cut2 <= text.length(); cut2++) {
                StopChecker c = checker(List.of("STOP"), List.of(), false);
                StringBuilder out = new StringBuilder();
                for (String d : List.of(text.substring(0, cut1), text.substring(cut1, cut2), text.substring(cut2))) {
                    out.append(c.acceptText(d).emit());
                }
                out.append(c.flush());
                assertThat(out.toString()).as("cuts %d %d", cut1, cut2).isEqualTo("one two three ");
            }
        }
    }
}
