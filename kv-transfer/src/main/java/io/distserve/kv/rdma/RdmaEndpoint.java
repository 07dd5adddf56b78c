package io.distserve.kv.rdma;

import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.RegionLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What a decode engine needs to read a prefill engine's pool, beside the RDMA CM address (the endpoint's host and
 * port). Two ways in, at least one of them offered:
 * <ul>
 *   <li><b>direct</b>: the pool is registered (host memory, or GPU memory through GPUDirect); {@code remote_addrs}
 *       and {@code rkeys} name each memory region, one per piece of at most {@code mr_bytes} of each segment;</li>
 *   <li><b>staged</b>: a GPU pool the NIC cannot read; its engine copies the runs asked for into pinned host
 *       buffers, asked for over a control channel on {@code staging_port} (tcp, authenticated by the endpoint's
 *       token), and they are READ from there.</li>
 * </ul>
 *
 * @param segments    per memory region of the pool (direct access), in order: address and rkey (lkey 0); empty when
 *                    the pool is only staged
 * @param mrBytes     the largest memory region the pool was registered in (0 without direct access)
 * @param stagingPort the staging control channel's tcp port, 0 when none
 * @param linkType    RoCE or IB (the proxy's --link-type)
 * @param gpuDirect   whether the pool is GPU memory registered through GPUDirect
 * @param disableGdr  the proxy's --disable-gdr for this pair: neither side lets the NIC touch GPU memory
 */
public record RdmaEndpoint(List<RdmaVerbs.Segment> segments, long mrBytes, int stagingPort, String linkType,
                           boolean gpuDirect, boolean disableGdr) {

    public static final String REMOTE_ADDRS = "remote_addrs";
    public static final String RKEYS = "rkeys";
    public static final String MR_BYTES = "mr_bytes";
    public static final String STAGING_PORT = "staging_port";
    public static final String LINK_TYPE = "link_type";
    public static final String GPU_DIRECT = "gpu_direct";
    public static final String DISABLE_GDR = "disable_gdr";
    /** The HELLO of the staging channel carries the token in a short-prefixed string. */
    static final int MAX_TOKEN_CHARS = 1024;

    public RdmaEndpoint {
        segments = List.copyOf(segments);
        checkLinkType(linkType);
        if (segments.isEmpty() && stagingPort == 0) {
            throw new IllegalArgumentException("the rdma endpoint offers neither " + REMOTE_ADDRS + " nor "
                    + STAGING_PORT);
        }
    }

    private static void checkLinkType(String linkType) {
        if (!"RoCE".equals(linkType) && !"IB".equals(linkType)) {
            throw new IllegalArgumentException(LINK_TYPE + " must be RoCE or IB, got '" + linkType + "'");
        }
    }

    /** Whether the pool can be READ where it is. */
    public boolean direct() {
        return !segments.isEmpty();
    }

    /** The attributes of the endpoint this engine publishes. */
    public Map<String, String> attributes() {
        Map<String, String> m = new LinkedHashMap<>();
        if (direct()) {
            List<String> addrs = new ArrayList<>();
            List<String> keys = new ArrayList<>();
            for (RdmaVerbs.Segment s : segments) {
                addrs.add("0x" + Long.toHexString(s.address()));
                keys.add(Integer.toUnsignedString(s.rkey()));
            }
            m.put(REMOTE_ADDRS, String.join(",", addrs));
            m.put(RKEYS, String.join(",", keys));
            m.put(MR_BYTES, Long.toString(mrBytes));
        }
        if (stagingPort != 0) {
            m.put(STAGING_PORT, Integer.toString(stagingPort));
        }
        m.put(LINK_TYPE, linkType);
        m.put(GPU_DIRECT, Boolean.toString(gpuDirect));
        if (disableGdr) {
            m.put(DISABLE_GDR, "true");
        }
        return m;
    }

    /**
     * The endpoint a prefill engine hands to one pair: the proxy's link type, and under --disable-gdr a GPUDirect
     * pool's direct access taken out (the peer stages instead) and {@code disable_gdr} set, so that the decode side
     * lands through pinned host memory too.
     */
    public static EndpointInfo forPair(EndpointInfo own, String linkType, boolean disableGdr) {
        checkLinkType(linkType);
        Map<String, String> attrs = new LinkedHashMap<>(own.attributes());
        attrs.put(LINK_TYPE, linkType);
        if (disableGdr) {
            attrs.put(DISABLE_GDR, "true");
            if ("true".equals(attrs.get(GPU_DIRECT))) {
                if (!attrs.containsKey(STAGING_PORT)) {
                    throw new IllegalStateException("a GPUDirect pool without a staging channel cannot serve a pair "
                            + "under --disable-gdr");
                }
                attrs.remove(REMOTE_ADDRS);
                attrs.remove(RKEYS);
                attrs.remove(MR_BYTES);
            }
        }
        return new EndpointInfo(own.transport(), own.host(), own.port(), own.regionSize(), own.segmentSizes(),
                own.token(), attrs);
    }

    /**
     * Reads and checks a peer's rdma endpoint against its layout: a hostile or broken one is refused naming the
     * attribute, before any verbs call or socket.
     *
     * @throws IllegalArgumentException naming the attribute, when one is missing, malformed or inconsistent
     */
    public static RdmaEndpoint parse(EndpointInfo e) {
        if (!"rdma".equals(e.transport())) {
            throw new IllegalArgumentException("not an rdma endpoint: transport '" + e.transport() + "'");
        }
        if (e.host() == null || e.host().isBlank() || e.port() < 1 || e.port() > 65535) {
            throw new IllegalArgumentException("the RDMA CM address must be host:port, got " + e.host() + ":"
                    + e.port());
        }
        if (e.regionSize() <= 0) {
            throw new IllegalArgumentException("regionSize must be positive, got " + e.regionSize());
        }
        RegionLayout layout = e.layout(); // checks that the segment sizes add up to regionSize
        Map<String, String> a = e.attributes();
        boolean gpuDirect = bool(a, GPU_DIRECT);
        boolean disableGdr = bool(a, DISABLE_GDR);
        List<RdmaVerbs.Segment> segs = List.of();
        long mrBytes = 0;
        if (a.containsKey(REMOTE_ADDRS) || a.containsKey(RKEYS)) {
            if (gpuDirect && disableGdr) {
                throw new IllegalArgumentException(DISABLE_GDR + " is set but " + REMOTE_ADDRS + " offers a "
                        + "GPUDirect pool");
            }
            mrBytes = parseLong(MR_BYTES, required(a, MR_BYTES));
            if (mrBytes < 1 || mrBytes > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(MR_BYTES + " must be in [1, 2^31), got " + mrBytes);
            }
            segs = segments(required(a, REMOTE_ADDRS).split(",", -1), required(a, RKEYS).split(",", -1), layout,
                    mrBytes);
        }
        int stagingPort = 0;
        if (a.containsKey(STAGING_PORT)) {
            long p = parseLong(STAGING_PORT, required(a, STAGING_PORT));
            if (p < 1 || p > 65535) {
                throw new IllegalArgumentException(STAGING_PORT + " must be a port in [1, 65535], got " + p);
            }
            if (e.token() == null || e.token().isBlank() || e.token().length() > MAX_TOKEN_CHARS) {
                throw new IllegalArgumentException("an rdma endpoint with a " + STAGING_PORT + " needs its token (1 to "
                        + MAX_TOKEN_CHARS + " characters)");
            }
            stagingPort = (int) p;
        }
        return new RdmaEndpoint(segs, mrBytes, stagingPort, required(a, LINK_TYPE), gpuDirect, disableGdr);
    }

    /** The pool's memory regions: one address and key per piece of the layout. */
    private static List<RdmaVerbs.Segment> segments(String[] addrs, String[] keys, RegionLayout layout,
                                                    long mrBytes) {
        long pieces = PoolRegistration.pieceCount(layout, mrBytes);
        if (addrs.length != pieces || keys.length != pieces) {
            throw new IllegalArgumentException(REMOTE_ADDRS + " and " + RKEYS + " must name one address and key per "
                    + "memory region (" + pieces + " of at most " + MR_BYTES + " bytes), got " + addrs.length + " and "
                    + keys.length);
        }
        RegionLayout mrs = PoolRegistration.pieces(layout, mrBytes);
        List<RdmaVerbs.Segment> segs = new ArrayList<>();
        for (int i = 0; i < addrs.length; i++) {
            long addr = parseAddress(addrs[i].trim());
            if (Long.compareUnsigned(addr, -mrs.segmentSizes().get(i)) > 0) {
                throw new IllegalArgumentException(REMOTE_ADDRS + "[" + i + "] + its region's size overflows 64 bits");
            }
            segs.add(new RdmaVerbs.Segment(addr, 0, parseKey(keys[i].trim())));
        }
        return segs;
    }

    private static boolean bool(Map<String, String> a, String key) {
        String v = a.getOrDefault(key, "false").toLowerCase(Locale.ROOT);
        if (!v.equals("true") && !v.equals("false")) {
            throw new IllegalArgumentException(key + " must be true or false, got '" + v + "'");
        }
        return v.equals("true");
    }

    private static String required(Map<String, String> a, String key) {
        String v = a.get(key);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException("the rdma endpoint has no " + key);
        }
        return v.trim();
    }

    private static long parseLong(String key, String s) {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException(key + " must be an integer, got '" + s + "'");
        }
    }

    private static int parseKey(String s) {
        try {
            long k = Long.parseLong(s);
            if (k < 0 || k > 0xFFFF_FFFFL) {
                throw new NumberFormatException();
            }
            return (int) k;
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException(RKEYS + " must be unsigned 32-bit integers, got '" + s + "'");
        }
    }

    private static long parseAddress(String s) {
        try {
            if (!s.startsWith("0x") || s.length() > 18) {
                throw new NumberFormatException();
            }
            return Long.parseUnsignedLong(s.substring(2), 16);
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException(REMOTE_ADDRS + " must be 0x and 1 to 16 hex digits each, got '" + s
                    + "'");
        }
    }
}
