package io.distserve.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One benchmark run summarized: throughput, the latency distributions, goodput under the SLOs, and the failures with
 * their first messages. The same fields go to the table and to the JSON.
 *
 * @param requestRate    the configured rate (infinite: all at once)
 * @param goodput        requests per second that met every SLO; null without SLOs
 * @param sloAttainment  percent of all requests sent that met every SLO (failures count as misses); null without SLOs
 * @param errors         distinct first error messages and how often each came, at most 5
 */
public record ServingReport(String endpoint, double requestRate, double burstiness, Integer maxConcurrency,
                            int requests, int completed, int failed, double durationSeconds, long inputTokens,
                            long outputTokens, long cachedTokens, double requestThroughput, double outputThroughput,
                            double totalTokenThroughput, Double goodput, Double sloAttainment, String slo, Stats ttftMs,
                            Stats tpotMs, Stats itlMs, Stats e2elMs, Map<String, Integer> errors) {

    static final int ERRORS_KEPT = 5;

    public static ServingReport of(String endpoint, double rate, double burstiness, Integer maxConcurrency,
                                   List<RequestOutcome> outcomes, long durationNanos, Slo slo) {
        double seconds = durationNanos / 1e9;
        int completed = 0;
        long in = 0;
        long out = 0;
        long cached = 0;
        int good = 0;
        List<Double> ttft = new ArrayList<>();
        List<Double> tpot = new ArrayList<>();
        List<Double> itl = new ArrayList<>();
        List<Double> e2el = new ArrayList<>();
        Map<String, Integer> errors = new LinkedHashMap<>();
        int otherErrors = 0;
        for (RequestOutcome r : outcomes) {
            if (!r.ok()) {
                String key = r.error() == null ? "unknown error" : r.error();
                if (errors.containsKey(key) || errors.size() < ERRORS_KEPT) {
                    errors.merge(key, 1, Integer::sum);
                } else {
                    otherErrors++;
                }
                continue;
            }
            completed++;
            in += Math.max(0, r.promptTokens() >= 0 ? r.promptTokens() : r.expectedPrompt());
            out += r.completionTokens();
            cached += r.cachedTokens();
            if (r.ttftNanos() >= 0) {
                ttft.add(r.ttftMs());
            }
            if (r.tpotMs() != null) {
                tpot.add(r.tpotMs());
            }
            for (long g : r.itlNanos()) {
                itl.add(g / 1e6);
            }
            e2el.add(r.e2elMs());
            if (slo.met(r)) {
                good++;
            }
        }
        if (otherErrors > 0) {
            errors.put("(other errors)", otherErrors);
        }
        boolean withSlo = !slo.isEmpty();
        return new ServingReport(endpoint, rate, burstiness, maxConcurrency, outcomes.size(), completed,
                outcomes.size() - completed, seconds, in, out, cached, completed / seconds, out / seconds,
                (in + out) / seconds, withSlo ? good / seconds : null,
                withSlo ? (outcomes.isEmpty() ? 0.0 : 100.0 * good / outcomes.size()) : null,
                withSlo ? slo.toString() : null, Stats.of(unbox(ttft)), Stats.of(unbox(tpot)), Stats.of(unbox(itl)),
                Stats.of(unbox(e2el)), errors);
    }

    private static double[] unbox(List<Double> l) {
        double[] v = new double[l.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = l.get(i);
        }
        return v;
    }

    /** The report as vLLM's benchmark prints it, plus p90 and the failures. */
    public String table() {
        StringBuilder b = new StringBuilder();
        b.append(center(" Serving Benchmark Result ", '=')).append('\n');
        line(b, "Successful requests:", Integer.toString(completed));
        line(b, "Failed requests:", Integer.toString(failed));
        line(b, "Request rate configured (RPS):", Double.isInfinite(requestRate) ? "inf" : fmt(requestRate));
        if (maxConcurrency != null) {
            line(b, "Maximum request concurrency:", Integer.toString(maxConcurrency));
        }
        line(b, "Benchmark duration (s):", fmt(durationSeconds));
        line(b, "Total input tokens:", Long.toString(inputTokens));
        line(b, "Total generated tokens:", Long.toString(outputTokens));
        if (cachedTokens > 0) {
            line(b, "Total cached prompt tokens:", Long.toString(cachedTokens));
        }
        line(b, "Request throughput (req/s):", fmt(requestThroughput));
        line(b, "Output token throughput (tok/s):", fmt(outputThroughput));
        line(b, "Total token throughput (tok/s):", fmt(totalTokenThroughput));
        if (goodput != null) {
            line(b, "Request goodput (req/s):", fmt(goodput) + "  (" + slo + ")");
            line(b, "SLO attainment (%):", fmt(sloAttainment));
        }
        section(b, "Time to First Token", "TTFT", ttftMs);
        section(b, "Time per Output Token (excl. 1st token)", "TPOT", tpotMs);
        section(b, "Inter-token Latency", "ITL", itlMs);
        section(b, "End-to-end Latency", "E2EL", e2elMs);
        if (!errors.isEmpty()) {
            b.append(center("Errors", '-')).append('\n');
            errors.forEach((m, n) -> b.append(String.format(Locale.ROOT, "%5d x %s%n", n, m)));
        }
        b.append("=".repeat(50)).append('\n');
        return b.toString();
    }

    private static void section(StringBuilder b, String title, String name, Stats s) {
        b.append(center(title, '-')).append('\n');
        line(b, "Mean " + name + " (ms):", fmt(s.mean()));
        line(b, "Median " + name + " (ms):", fmt(s.median()));
        line(b, "P90 " + name + " (ms):", fmt(s.p90()));
        line(b, "P99 " + name + " (ms):", fmt(s.p99()));
    }

    private static void line(StringBuilder b, String label, String value) {
        b.append(String.format(Locale.ROOT, "%-40s %s%n", label, value));
    }

    static String center(String title, char fill) {
        int pad = Math.max(0, 50 - title.length());
        return String.valueOf(fill).repeat(pad / 2) + title + String.valueOf(fill).repeat(pad - pad / 2);
    }

    static String fmt(double v) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%.2f", v);
    }

    static String fmt(Double v) {
        return v == null ? "-" : fmt(v.doubleValue());
    }
}
