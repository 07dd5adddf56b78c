package io.distserve.bench;

import java.util.Locale;

/**
 * Service-level objectives a request must meet to count toward goodput (vLLM's {@code --goodput}): time to first
 * token, time per output token, end-to-end latency, in milliseconds; an absent one is not checked.
 */
public record Slo(Double ttftMs, Double tpotMs, Double e2elMs) {

    public static final Slo NONE = new Slo(null, null, null);

    /** Parses {@code ttft:MS tpot:MS e2el:MS} (any of them, any order; also {@code key=MS}). */
    public static Slo parse(java.util.List<String> parts) {
        Double ttft = null;
        Double tpot = null;
        Double e2el = null;
        for (String p : parts) {
            String[] kv = p.trim().split("[:=]", 2);
            if (kv.length != 2) {
                throw new IllegalArgumentException("--goodput takes KEY:MS pairs (ttft, tpot, e2el), got '" + p + "'");
            }
            double ms;
            try {
                ms = Double.parseDouble(kv[1]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--goodput " + kv[0] + ": '" + kv[1] + "' is not a number of ms");
            }
            if (!(ms > 0) || Double.isInfinite(ms)) {
                throw new IllegalArgumentException("--goodput " + kv[0] + " must be a positive number of ms");
            }
            switch (kv[0].toLowerCase(Locale.ROOT)) {
                case "ttft" -> ttft = ms;
                case "tpot" -> tpot = ms;
                case "e2el" -> e2el = ms;
                default -> throw new IllegalArgumentException("--goodput knows ttft, tpot and e2el, not '" + kv[0]
                        + "'");
            }
        }
        return new Slo(ttft, tpot, e2el);
    }

    public boolean isEmpty() {
        return ttftMs == null && tpotMs == null && e2elMs == null;
    }

    /** Whether a successful request meets every objective given (a 1-token answer has no TPOT: it passes that). */
    public boolean met(RequestOutcome r) {
        if (!r.ok()) {
            return false;
        }
        return (ttftMs == null || r.ttftMs() <= ttftMs)
                && (tpotMs == null || r.tpotMs() == null || r.tpotMs() <= tpotMs)
                && (e2elMs == null || r.e2elMs() <= e2elMs);
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder();
        if (ttftMs != null) {
            b.append("ttft<=").append(ttftMs).append("ms ");
        }
        if (tpotMs != null) {
            b.append("tpot<=").append(tpotMs).append("ms ");
        }
        if (e2elMs != null) {
            b.append("e2el<=").append(e2elMs).append("ms ");
        }
        return b.toString().trim();
    }
}
