package io.distserve.registry;

import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.atomic.AtomicLong;

/** A clock that moves only when a test advances it; wall and monotonic time move together. */
final class ManualTime implements TimeSource {

    private final Instant origin;
    private final AtomicLong elapsedNanos = new AtomicLong();

    ManualTime(Instant origin) {
        this.origin = origin;
    }

    ManualTime() {
        this(Instant.parse("2025-01-01T00:00:00Z"));
    }

    void advance(Duration d) {
        elapsedNanos.addAndGet(d.toNanos());
    }

    @Override
    public Instant now() {
        return origin.plusNanos(elapsedNanos.get());
    }

    @Override
    public long nanoTime() {
        return 1_000_000_000L + elapsedNanos.get();
    }
}
