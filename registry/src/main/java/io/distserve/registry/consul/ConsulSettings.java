package io.distserve.registry.consul;

import java.time.Duration;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The timings of Consul registration and discovery, from application.properties ({@code distserve.consul.*}),
 * written as Consul writes durations ("10s", "1m", "500ms").
 *
 * @param checkInterval          how often Consul probes an engine's {@code /health}
 * @param checkTimeout           how long one probe may take
 * @param deregisterAfter        how long an engine's check may stay critical before Consul deregisters it (Consul
 *                               itself reaps every 30 s and never sooner than 1 minute)
 * @param syncInterval           how often an engine checks that the agent still knows its registration (an agent
 *                               restarted without its data forgets it) and registers again if not
 * @param blockingWait           how long one blocking query of a proxy waits for a change
 * @param requestTimeout         connect timeout, and the read timeout of non-blocking calls
 * @param failuresBeforeCritical failed checks in a row that Consul tolerates before the check turns critical
 *                               (Consul's {@code FailuresBeforeCritical}; 0: the first failure)
 */
public record ConsulSettings(Duration checkInterval, Duration checkTimeout, Duration deregisterAfter,
                             Duration syncInterval, Duration blockingWait, Duration requestTimeout,
                             int failuresBeforeCritical) {

    public static final ConsulSettings DEFAULTS = new ConsulSettings(Duration.ofSeconds(5), Duration.ofSeconds(2),
            Duration.ofMinutes(1), Duration.ofSeconds(10), Duration.ofSeconds(5), Duration.ofSeconds(5), 1);

    private static final Pattern GO_DURATION = Pattern.compile("(\\d+(?:\\.\\d+)?)(ns|us|µs|ms|s|m|h)");

    public ConsulSettings {
        positive(checkInterval, "checkInterval");
        positive(checkTimeout, "checkTimeout");
        positive(deregisterAfter, "deregisterAfter");
        positive(syncInterval, "syncInterval");
        positive(blockingWait, "blockingWait");
        positive(requestTimeout, "requestTimeout");
        if (failuresBeforeCritical < 0) {
            throw new IllegalArgumentException("failuresBeforeCritical must not be negative, got "
                    + failuresBeforeCritical);
        }
        if (blockingWait.compareTo(Duration.ofMinutes(10)) > 0) {
            throw new IllegalArgumentException("blockingWait must be at most 10m (Consul's limit), got "
                    + format(blockingWait));
        }
    }

    private static void positive(Duration d, String name) {
        Objects.requireNonNull(d, name);
        if (d.isZero() || d.isNegative()) {
            throw new IllegalArgumentException(name + " must be positive, got " + d);
        }
    }

    public ConsulSettings withCheckInterval(Duration d) {
        return new ConsulSettings(d, checkTimeout, deregisterAfter, syncInterval, blockingWait, requestTimeout,
                failuresBeforeCritical);
    }

    public ConsulSettings withCheckTimeout(Duration d) {
        return new ConsulSettings(checkInterval, d, deregisterAfter, syncInterval, blockingWait, requestTimeout,
                failuresBeforeCritical);
    }

    public ConsulSettings withDeregisterAfter(Duration d) {
        return new ConsulSettings(checkInterval, checkTimeout, d, syncInterval, blockingWait, requestTimeout,
                failuresBeforeCritical);
    }

    public ConsulSettings withSyncInterval(Duration d) {
        return new ConsulSettings(checkInterval, checkTimeout, deregisterAfter, d, blockingWait, requestTimeout,
                failuresBeforeCritical);
    }

    public ConsulSettings withBlockingWait(Duration d) {
        return new ConsulSettings(checkInterval, checkTimeout, deregisterAfter, syncInterval, d, requestTimeout,
                failuresBeforeCritical);
    }

    public ConsulSettings withRequestTimeout(Duration d) {
        return new ConsulSettings(checkInterval, checkTimeout, deregisterAfter, syncInterval, blockingWait, d,
                failuresBeforeCritical);
    }

    public ConsulSettings withFailuresBeforeCritical(int n) {
        return new ConsulSettings(checkInterval, checkTimeout, deregisterAfter, syncInterval, blockingWait,
                requestTimeout, n);
    }

    /**
     * Parses a duration as Consul (Go) writes it: a sequence of decimal numbers with units ns, us, ms, s, m, h
     * ("1m30s", "250ms").
     *
     * @throws IllegalArgumentException when it is not one
     */
    public static Duration parseDuration(String text) {
        String s = text == null ? "" : text.trim();
        if (s.isEmpty()) {
            throw new IllegalArgumentException("empty duration");
        }
        Matcher m = GO_DURATION.matcher(s);
        int at = 0;
        double nanos = 0;
        while (at < s.length()) {
            if (!m.find(at) || m.start() != at) {
                throw new IllegalArgumentException("'" + text + "' is not a duration like 10s, 1m or 500ms");
            }
            double n = Double.parseDouble(m.group(1));
            nanos += n * switch (m.group(2)) {
                case "ns" -> 1d;
                case "us", "µs" -> 1e3;
                case "ms" -> 1e6;
                case "s" -> 1e9;
                case "m" -> 60e9;
                default -> 3600e9;
            };
            at = m.end();
        }
        return Duration.ofNanos((long) nanos);
    }

    /** Writes a duration the way Consul reads it: whole milliseconds ("1500ms") or seconds ("5s"). */
    public static String format(Duration d) {
        long ms = d.toMillis();
        return ms % 1000 == 0 ? (ms / 1000) + "s" : ms + "ms";
    }
}
