package io.distserve.processors.proxy;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The prefill leases this proxy is between taking and handing over: session id to prefill node. {@code /distserve/gc}
 * frees leases on prefill nodes that no request of this proxy is using any more.
 */
public final class InFlightMigrations {

    record Entry(String prefillUrl, String prefillEngineId, long sinceNanos) {
    }

    private final Map<String, Entry> sessions = new ConcurrentHashMap<>();

    void started(String sessionId, String prefillUrl, String prefillEngineId) {
        sessions.put(sessionId, new Entry(prefillUrl, prefillEngineId, System.nanoTime()));
    }

    void ended(String sessionId) {
        sessions.remove(sessionId);
    }

    Set<String> sessions() {
        return Set.copyOf(sessions.keySet());
    }

    public int size() {
        return sessions.size();
    }
}
