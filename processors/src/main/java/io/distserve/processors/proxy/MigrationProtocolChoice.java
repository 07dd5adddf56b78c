package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Which KV transport a (prefill, decode) pair migrates over: the proxy's {@code --migration-protocol} and what each
 * engine offers in its {@code engine_info}. One rule, pure logic:
 * <ul>
 *   <li>{@code auto} (the default): {@code nvlink} when both engines offer it and run on one host (same
 *       {@code host_id}), then {@code rdma} when both offer it, then {@code tcp} when both offer it. The list is
 *       tried in order: a decode engine that cannot open the prefill's nvlink handle refuses it
 *       ({@code endpoint_refused}) and the pair falls back to the next one.</li>
 *   <li>{@code tcp}, {@code nvlink} or {@code rdma}: that one only; nvlink also needs one host.</li>
 *   <li>Nothing left: a clear failure naming what each side offers (the request gets a 503).</li>
 * </ul>
 */
public final class MigrationProtocolChoice {

    public static final String AUTO = "auto";
    static final Set<String> KNOWN = Set.of(AUTO, "tcp", "nvlink", "rdma");

    /** What an engine's {@code engine_info} says about migration. */
    public record Offer(String engineId, List<String> transports, String hostId) {
        public Offer {
            transports = transports.stream().map(t -> t.toLowerCase(Locale.ROOT)).toList();
        }

        /**
         * From {@code engine_info}: {@code transports} (an engine of an older build lists its one transport the
         * same way) and {@code host_id} (absent: unknown, so never nvlink).
         */
        static Offer of(JsonNode engineInfo) {
            List<String> ts = new ArrayList<>();
            engineInfo.path("transports").forEach(t -> ts.add(t.asText()));
            String host = engineInfo.path("host_id").asText("");
            return new Offer(engineInfo.path("engine_id").asText(), ts, host.isEmpty() ? null : host);
        }

        boolean offers(String t) {
            return transports.contains(t);
        }
    }

    /** No transport satisfies the setting and both engines; the message names them. */
    public static final class NoCommonTransport extends RuntimeException {
        NoCommonTransport(String message) {
            super(message);
        }
    }

    private MigrationProtocolChoice() {
    }

    /** Normalizes a {@code --migration-protocol} value (any case: LMDeploy writes NVLINK, its docs NVLink). */
    public static String normalize(String setting) {
        String s = setting == null ? AUTO : setting.toLowerCase(Locale.ROOT);
        if (!KNOWN.contains(s)) {
            throw new IllegalArgumentException("unknown migration protocol '" + setting + "'; one of AUTO, TCP, "
                    + "NVLINK, RDMA");
        }
        return s;
    }

    /**
     * The transports to try for the pair, best first; never empty.
     *
     * @throws NoCommonTransport when none fits
     */
    public static List<String> candidates(String setting, Offer prefill, Offer decode) {
        String s = normalize(setting);
        boolean sameHost = prefill.hostId() != null && prefill.hostId().equals(decode.hostId());
        List<String> out = new ArrayList<>();
        if (s.equals(AUTO)) {
            if (prefill.offers("nvlink") && decode.offers("nvlink") && sameHost) {
                out.add("nvlink");
            }
            for (String t : List.of("rdma", "tcp")) {
                if (prefill.offers(t) && decode.offers(t)) {
                    out.add(t);
                }
            }
        } else if (prefill.offers(s) && decode.offers(s) && (!s.equals("nvlink") || sameHost)) {
            out.add(s);
        }
        if (out.isEmpty()) {
            String why = s.equals("nvlink") && prefill.offers(s) && decode.offers(s)
                    ? "; nvlink needs both engines on one host, and prefill is on " + prefill.hostId()
                            + ", decode on " + decode.hostId()
                    : "";
            throw new NoCommonTransport("no KV transport for migration-protocol " + s.toUpperCase(Locale.ROOT)
                    + " between prefill engine " + prefill.engineId() + " (offers " + prefill.transports()
                    + ") and decode engine " + decode.engineId() + " (offers " + decode.transports() + ")" + why);
        }
        return out;
    }
}
