package io.distserve.bench;

import java.util.Random;

/**
 * When each request is sent, as offsets from the start: an open-loop arrival process as vLLM's benchmark has it.
 * Inter-arrival gaps are gamma-distributed with shape {@code burstiness} and mean {@code 1 / rate}: burstiness 1 is
 * a Poisson process (exponential gaps), below 1 burstier, above 1 more regular. Rate infinity sends everything at once.
 */
public final class ArrivalSchedule {

    private ArrivalSchedule() {
    }

    /**
     * @param rate       requests per second, or {@link Double#POSITIVE_INFINITY}
     * @param burstiness gamma shape, > 0
     * @return {@code n} non-decreasing offsets in seconds, the first at 0
     */
    public static double[] offsets(int n, double rate, double burstiness, long seed) {
        if (n < 0) {
            throw new IllegalArgumentException("request count must be >= 0");
        }
        if (!(rate > 0)) {
            throw new IllegalArgumentException("request rate must be > 0 (or inf), got " + rate);
        }
        if (!(burstiness > 0) || Double.isInfinite(burstiness)) {
            throw new IllegalArgumentException("burstiness must be a positive number, got " + burstiness);
        }
        double[] out = new double[n];
        if (Double.isInfinite(rate)) {
            return out;
        }
        Random rnd = new Random(seed);
        double scale = 1.0 / (rate * burstiness); // mean of a gamma(k, theta) gap is k * theta = 1 / rate
        double t = 0;
        for (int i = 1; i < n; i++) {
            t += gamma(rnd, burstiness) * scale;
            out[i] = t;
        }
        return out;
    }

    /** A gamma(shape, 1) sample (Marsaglia and Tsang; shape < 1 through the boost u^(1/shape)). */
    static double gamma(Random rnd, double shape) {
        if (shape < 1) {
            double u = rnd.nextDouble();
            return gamma(rnd, shape + 1) * Math.pow(u, 1.0 / shape);
        }
        double d = shape - 1.0 / 3;
        double c = 1 / Math.sqrt(9 * d);
        while (true) {
            double x;
            double v;
            do {
                x = rnd.nextGaussian();
                v = 1 + c * x;
            } while (v <= 0);
            v = v * v * v;
            double u = rnd.nextDouble();
            if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) {
                return d * v;
            }
        }
    }
}
