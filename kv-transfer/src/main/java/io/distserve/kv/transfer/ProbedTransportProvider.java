package io.distserve.kv.transfer;

import java.util.Optional;

/**
 * A provider whose availability is a probe of the machine (a native library, a device), run once on first ask: the
 * answer does not change while the process runs, and probing loads native code.
 */
public abstract class ProbedTransportProvider implements TransportProvider {

    private volatile Optional<String> reason;

    /** Why the transport cannot run here, in one line; empty when it can. */
    protected abstract Optional<String> probe();

    @Override
    public final boolean isAvailable() {
        return unavailableReason().isEmpty();
    }

    @Override
    public final Optional<String> unavailableReason() {
        Optional<String> r = reason;
        if (r == null) {
            r = probe();
            reason = r;
        }
        return r;
    }

    /** For {@link #create}: refuses when the probe failed. */
    protected final void requireAvailable() {
        Optional<String> why = unavailableReason();
        if (why.isPresent()) {
            throw new TransportUnavailableException("transport '" + name() + "' is unavailable: " + why.get());
        }
    }
}
