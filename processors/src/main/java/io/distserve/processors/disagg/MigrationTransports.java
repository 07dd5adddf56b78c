package io.distserve.processors.disagg;

import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportProvider;
import io.distserve.kv.transfer.TransportRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Which transports an engine offers for its KV pool ({@code --migration-backend}): {@code auto} offers every one
 * that runs here and can serve the pool, fastest first (nvlink, rdma, tcp); a transport named explicitly is the
 * only one offered, and one that cannot serve this engine is a one-line error at start. The proxy then picks one per
 * (prefill, decode) pair among what both offer.
 */
public final class MigrationTransports {

    public static final String AUTO = "auto";
    /** Preference order of {@code auto}: same-host device copies, then RDMA, then sockets. */
    static final List<String> PREFERENCE = List.of("nvlink", "rdma", "tcp");

    private static final Logger LOG = LoggerFactory.getLogger(MigrationTransports.class);

    private MigrationTransports() {
    }

    /**
     * New, unstarted transports for {@code region}.
     *
     * @param choice {@code auto}, or a transport name
     * @throws IllegalStateException one line saying why the named transport cannot serve this engine
     */
    public static List<KvTransport> offered(TransportRegistry registry, MemoryRegion region, String choice,
                                            TransportOptions options) {
        String want = choice == null ? AUTO : choice.toLowerCase(Locale.ROOT);
        if (!want.equals(AUTO)) {
            TransportProvider p = registry.provider(want).orElseThrow(() -> new IllegalStateException(
                    "--migration-backend " + want + ": unknown transport; known: " + registry.names()));
            if (!p.isAvailable()) {
                throw new IllegalStateException("--migration-backend " + want + ": unavailable here: "
                        + p.unavailableReason().orElse("no reason given"));
            }
            Optional<String> why = p.unsupportedReason(region);
            if (why.isPresent()) {
                throw new IllegalStateException("--migration-backend " + want + ": " + why.get());
            }
            return List.of(p.create(options));
        }
        List<KvTransport> out = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        for (String name : PREFERENCE) {
            Optional<TransportProvider> p = registry.provider(name);
            if (p.isEmpty()) {
                skipped.add(name + ": not in this build");
                continue;
            }
            Optional<String> unsupported = p.get().unsupportedReason(region);
            if (!p.get().isAvailable()) {
                skipped.add(name + ": " + p.get().unavailableReason().orElse("unavailable"));
            } else if (unsupported.isPresent()) {
                skipped.add(name + ": " + unsupported.get());
            } else {
                out.add(p.get().create(options));
            }
        }
        for (String name : registry.names()) { // transports of other jars, after ours
            if (!PREFERENCE.contains(name)) {
                TransportProvider p = registry.provider(name).orElseThrow();
                if (p.isAvailable() && p.unsupportedReason(region).isEmpty()) {
                    out.add(p.create(options));
                }
            }
        }
        if (out.isEmpty()) {
            throw new IllegalStateException("no KV transport can serve this engine's pool (" + skipped + ")");
        }
        LOG.info("KV migration offers {} ({})", out.stream().map(KvTransport::name).toList(),
                skipped.isEmpty() ? "every transport" : String.join("; ", skipped));
        return out;
    }
}
