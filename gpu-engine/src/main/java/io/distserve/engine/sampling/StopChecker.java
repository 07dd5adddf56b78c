package io.distserve.engine.sampling;

import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Decides when a sequence stops and which text may be streamed: EOS ids (unless {@code ignore_eos}), stop token ids,
 * stop strings matched on the detokenized text (also across token boundaries) and the token limit.
 *
 * <p>Text flows through {@link #acceptText(String)}: it returns what is safe to emit now. Text that could still be
 * the beginning of a stop string is held back (at most {@code maxStopLength - 1} characters); when a stop string
 * appears, the text before it is released and the stop string and everything after it are dropped. One instance per
 * sequence; not thread-safe.
 */
public final class StopChecker {

    /** What the stop checker made of a piece of text. */
    public record TextStep(String emit, boolean stopped) {
    }

    private final Set<Integer> stopIds;
    private final List<String> stopStrings;
    private final int maxStopLength;
    private final int maxTokens;
    private final StringBuilder pending = new StringBuilder();
    private boolean stopped;

    public StopChecker(SamplingParams params, Collection<Integer> eosIds) {
        Set<Integer> ids = new HashSet<>(params.stopTokenIds());
        if (!params.ignoreEos()) {
            ids.addAll(eosIds);
        }
        this.stopIds = Set.copyOf(ids);
        this.stopStrings = params.stop().stream().filter(s -> !s.isEmpty()).toList();
        this.maxStopLength = stopStrings.stream().mapToInt(String::length).max().orElse(0);
        this.maxTokens = params.maxTokens();
    }

    /** True when this token ends the sequence by id (EOS unless ignored, or a stop id); it adds no text. */
    public boolean isStopToken(int tokenId) {
        return stopIds.contains(tokenId);
    }

    /** True when {@code generated} tokens reach the limit. */
    public boolean reachedLimit(int generated) {
        return generated >= maxTokens;
    }

    /** True once a stop string was seen; later text is ignored. */
    public boolean stopped() {
        return stopped;
    }

    /** Feeds newly detokenized text; returns what may be emitted and whether a stop string ended the sequence. */
    public TextStep acceptText(String delta) {
        if (stopped) {
            return new TextStep("", true);
        }
        if (stopStrings.isEmpty()) {
            return new TextStep(delta, false);
        }
        // Everything that could contain (the start of) a stop string is in pending: we only ever release text that
        // no stop string can start in, so searching pending alone is enough.
        pending.append(delta);
        int hit = -1;
        for (String s : stopStrings) {
            int at = pending.indexOf(s);
            if (at >= 0 && (hit < 0 || at < hit)) {
                hit = at;
            }
        }
        if (hit >= 0) {
            stopped = true;
            String emit = pending.substring(0, hit);
            pending.setLength(0);
            return new TextStep(emit, true);
        }
        int cut = holdBackStart();
        String emit = pending.substring(0, cut);
        pending.delete(0, cut);
        return new TextStep(emit, false);
    }

    /** Releases the held-back text at the end of the sequence (nothing if a stop string was seen). */
    public String flush() {
        if (stopped) {
            return "";
        }
        String rest = pending.toString();
        pending.setLength(0);
        return rest;
    }

    /**
     * The earliest index of pending from which the rest is a proper prefix of some stop string; pending's length if
     * none. Only the last {@code maxStopLength - 1} characters can qualify.
     */
    private int holdBackStart() {
        int len = pending.length();
        for (int i = Math.max(0, len - (maxStopLength - 1)); i < len; i++) {
            if (isPrefixOfAStopString(i)) {
                // Never split a surrogate pair between what is emitted and what is held.
                if (i > 0 && Character.isLowSurrogate(pending.charAt(i))
                        && Character.isHighSurrogate(pending.charAt(i - 1))) {
                    return i - 1;
                }
                return i;
            }
        }
        return len;
    }

    private boolean isPrefixOfAStopString(int from) {
        int n = pending.length() - from;
        for (String s : stopStrings) {
            if (s.length() > n && startsWithPendingFrom(s, from, n)) {
                return true;
            }
        }
        return false;
    }

    private boolean startsWithPendingFrom(String s, int from, int n) {
        for (int j = 0; j < n; j++) {
            if (s.charAt(j) != pending.charAt(from + j)) {
                return false;
            }
        }
        return true;
    }
}
