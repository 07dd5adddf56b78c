package io.distserve.registry;

import java.time.Instant;

/**
 * Wall time for timestamps shown to operators and a monotonic clock for durations, behind one interface so tests
 * can advance time instead of sleeping.
 */
public interface TimeSource {

    /** The current wall-clock time (health "since" timestamps, removal deadlines). */
    Instant now();

    /** A monotonic nanosecond reading, only meaningful as a difference (request latencies). */
    long nanoTime();

    /** The real clocks. */
    static TimeSource system() {
        return SystemTimeSource.INSTANCE;
    }

    /** The system clocks; an enum so that there is exactly one, with no mutable state. */
    enum SystemTimeSource implements TimeSource {
        INSTANCE;

        @Override
        public Instant now() {
            return Instant.now();
        }

        @Override
        public long nanoTime() {
            return System.nanoTime();
        }
    }
}
