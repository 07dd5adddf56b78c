package io.distserve.processors.disagg;

import io.distserve.engine.kv.BlockManager;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * KV blocks a Prefill engine keeps for a decode engine to pull. A lease ends exactly once: on the decode side's
 * acknowledgement ({@code free_cache}), on an explicit free, or when it expires — its blocks always go back to the
 * pool (LMDeploy leaked them when the ids did not match, their #4967).
 */
public final class PrefillLeases implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(PrefillLeases.class);

    /** A held sequence: its blocks, its prompt and first token, and when it expires. */
    public record Lease(String sessionId, int[] blocks, int promptTokens, int firstToken, long expiresAtNanos) {
    }

    private final BlockManager blocks;
    private final long ttlNanos;
    private final LongSupplier clock;
    private final Map<String, Lease> leases = new ConcurrentHashMap<>();
    private final ScheduledExecutorService sweeper;
    private long expired;
    private long freed;

    public PrefillLeases(BlockManager blocks, Duration ttl) {
        this(blocks, ttl, System::nanoTime, true);
    }

    PrefillLeases(BlockManager blocks, Duration ttl, LongSupplier clock, boolean sweep) {
        this.blocks = blocks;
        this.ttlNanos = ttl.toNanos();
        this.clock = clock;
        if (sweep) {
            sweeper = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "prefill-lease-sweeper");
                t.setDaemon(true);
                return t;
            });
            long period = Math.max(100, Math.min(1000, ttl.toMillis() / 4));
            sweeper.scheduleWithFixedDelay(this::expire, period, period, TimeUnit.MILLISECONDS);
        } else {
            sweeper = null;
        }
    }

    /** Takes ownership of {@code blockIds} until freed or expired. */
    public Lease hold(String sessionId, int[] blockIds, int promptTokens, int firstToken) {
        Lease lease = new Lease(sessionId, blockIds.clone(), promptTokens, firstToken, clock.getAsLong() + ttlNanos);
        if (leases.putIfAbsent(sessionId, lease) != null) {
            blocks.free(blockIds);
            throw new IllegalStateException("session " + sessionId + " already holds a lease");
        }
        return lease;
    }

    public Lease get(String sessionId) {
        return leases.get(sessionId);
    }

    /** Ends a lease and frees its blocks; false when there is no such lease (already freed or expired). */
    public boolean free(String sessionId) {
        return free(sessionId, null);
    }

    /**
     * Ends a lease only if it holds exactly {@code expectedBlocks} (in order), so that a decode engine's
     * acknowledgement also proves it pulled this session's blocks and not another's; null skips the check.
     * False when there is no such lease or the blocks differ (the lease then stays).
     */
    public boolean free(String sessionId, int[] expectedBlocks) {
        Lease lease = leases.get(sessionId);
        if (lease == null || (expectedBlocks != null && !java.util.Arrays.equals(lease.blocks(), expectedBlocks))) {
            return false;
        }
        if (!leases.remove(sessionId, lease)) {
            return false;
        }
        blocks.free(lease.blocks());
        synchronized (this) {
            freed++;
        }
        return true;
    }

    /** Frees every lease past its expiry; returns how many. */
    public int expire() {
        long now = clock.getAsLong();
        int n = 0;
        for (Lease lease : leases.values()) {
            if (now - lease.expiresAtNanos() >= 0 && leases.remove(lease.sessionId(), lease)) {
                blocks.free(lease.blocks());
                n++;
                LOG.warn("prefill lease {} expired: {} KV blocks freed without a decode acknowledgement",
                        lease.sessionId(), lease.blocks().length);
            }
        }
        if (n > 0) {
            synchronized (this) {
                expired += n;
            }
        }
        return n;
    }

    /** A lease as {@code engine_info} lists it. */
    public record LeaseInfo(String sessionId, int blocks, long ageMillis) {
    }

    /** The leases held now, oldest first, at most {@code limit}. */
    public java.util.List<LeaseInfo> snapshot(int limit) {
        long now = clock.getAsLong();
        return leases.values().stream()
                .sorted(java.util.Comparator.comparingLong(Lease::expiresAtNanos))
                .limit(limit)
                .map(l -> new LeaseInfo(l.sessionId(), l.blocks().length,
                        Math.max(0, (now - (l.expiresAtNanos() - ttlNanos)) / 1_000_000)))
                .toList();
    }

    public int active() {
        return leases.size();
    }

    public int blocksHeld() {
        int n = 0;
        for (Lease lease : leases.values()) {
            n += lease.blocks().length;
        }
        return n;
    }

    public synchronized long expiredCount() {
        return expired;
    }

    public synchronized long freedCount() {
        return freed;
    }

    /** Stops the sweeper and frees every remaining lease. */
    @Override
    public void close() {
        if (sweeper != null) {
            sweeper.shutdownNow();
        }
        for (String id : leases.keySet()) {
            free(id);
        }
    }
}
