package io.distserve.processors.engine;

import io.distserve.engine.EngineStats;
import org.apache.camel.api.management.ManagedAttribute;
import org.apache.camel.api.management.ManagedOperation;
import org.apache.camel.api.management.ManagedResource;

/**
 * The engine as a JMX MBean in Camel's domain ({@code org.apache.camel:context=...,type=services,
 * name=DistServeEngine}), beside Camel's own routes and processors.
 */
@ManagedResource(description = "DistServe inference engine")
public final class EngineManagement {

    private final EngineNode node;

    public EngineManagement(EngineNode node) {
        this.node = node;
    }

    private EngineStats stats() {
        return node.stats();
    }

    @ManagedAttribute(description = "Engine id")
    public String getEngineId() {
        return node.engineId();
    }

    @ManagedAttribute(description = "Served model")
    public String getModel() {
        return node.modelName();
    }

    @ManagedAttribute(description = "Role: Hybrid, Prefill or Decode")
    public String getRole() {
        return node.role().name();
    }

    @ManagedAttribute(description = "Serving state")
    public String getState() {
        return node.state().name();
    }

    @ManagedAttribute(description = "Sequences being generated")
    public int getRunning() {
        return stats().running();
    }

    @ManagedAttribute(description = "Sequences waiting to be scheduled")
    public int getWaiting() {
        return stats().waiting();
    }

    @ManagedAttribute(description = "KV cache blocks in use")
    public int getKvBlocksUsed() {
        return stats().blocksUsed();
    }

    @ManagedAttribute(description = "KV cache blocks free")
    public int getKvBlocksFree() {
        return stats().blocksFree();
    }

    @ManagedAttribute(description = "KV blocks whose contents the prefix cache holds")
    public int getPrefixCacheBlocks() {
        return node.stats().cachedBlocks();
    }

    @ManagedAttribute(description = "Prompt tokens served from the prefix cache / prompt tokens, since start (0-1)")
    public double getPrefixCacheHitRate() {
        var s = node.stats();
        return s.prefixQueriedTokens() == 0 ? 0 : (double) s.prefixHitTokens() / s.prefixQueriedTokens();
    }

    @ManagedAttribute(description = "Tokens generated since start")
    public long getTokensGenerated() {
        return stats().tokensGenerated();
    }

    @ManagedAttribute(description = "Requests finished since start (any reason)")
    public long getRequestsServed() {
        EngineStats s = stats();
        return s.requestsFinished() + s.requestsAborted() + s.requestsFailed();
    }

    @ManagedAttribute(description = "Prefill role: KV leases held for decode engines")
    public int getKvLeases() {
        return node.leases().active();
    }

    @ManagedAttribute(description = "Prefill role: KV blocks held under leases")
    public int getKvLeasedBlocks() {
        return node.leases().blocksHeld();
    }

    @ManagedAttribute(description = "Prefill role: leases that expired without a decode acknowledgement")
    public long getKvLeasesExpired() {
        return node.leases().expiredCount();
    }

    @ManagedOperation(description = "Free a prefill KV lease by session id; true if it was held")
    public boolean freeLease(String sessionId) {
        return node.leases().free(sessionId);
    }

    @ManagedOperation(description = "Abort a request by id; true if it was found")
    public boolean abort(String requestId) {
        return node.engine().abort(requestId);
    }

    @ManagedOperation(description = "Stop accepting new requests; in-flight ones finish")
    public void drain() {
        node.markDraining();
        node.engine().drain();
    }
}
