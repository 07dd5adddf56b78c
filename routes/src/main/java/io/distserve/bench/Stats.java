package io.distserve.bench;

import java.util.Arrays;

/**
 * Mean, median, p90 and p99 of a sample, in milliseconds; percentiles by linear interpolation between closest ranks
 * (numpy's default, so the numbers compare with vLLM's benchmark). All NaN for an empty sample.
 */
public record Stats(int count, double mean, double median, double p90, double p99) {

    public static Stats of(double[] values) {
        if (values.length == 0) {
            return new Stats(0, Double.NaN, Double.NaN, Double.NaN, Double.NaN);
        }
        double[] v = values.clone();
        Arrays.sort(v);
        double sum = 0;
        for (double x : v) {
            sum += x;
        }
        return new Stats(v.length, sum / v.length, percentile(v, 50), percentile(v, 90), percentile(v, 99));
    }

    /** The {@code p}-th percentile of sorted values: rank p/100 * (n - 1), interpolated. */
    static double percentile(double[] sorted, double p) {
        double rank = p / 100 * (sorted.length - 1);
        int lo = (int) Math.floor(rank);
        int hi = (int) Math.ceil(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }
}
