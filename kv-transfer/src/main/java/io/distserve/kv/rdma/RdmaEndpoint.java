package io.distserve.kv.rdma;

import io.distserve.kv.transfer.EndpointInfo;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What a decode engine needs to read a prefill engine's pool with one-sided RDMA READs, beside the RDMA CM address
 * (the endpoint's host and port): each registered segment's remote address and key, and how the link was set up.
 *
 * @param segments  per segment of the pool's layout (in order): its address (virtual, or with GPUDirect a device
 *                  address) and its remote key; the lkey is not published (0 here)
 * @param linkType  RoCE or IB (the proxy's --link-type)
 * @param gpuDirect whether the NIC reads device memory directly (GPUDirect)
 */
public record RdmaEndpoint(List<RdmaVerbs.Segment> segments, String linkType, boolean gpuDirect) {

    public static final String REMOTE_ADDRS = "remote_addrs";
    public static final String RKEYS = "rkeys";
    public static final String LINK_TYPE = "link_type";
    public static final String GPU_DIRECT = "gpu_direct";

    public RdmaEndpoint {
        segments = List.copyOf(segments);
        if (!linkType.equals("RoCE") && !linkType.equals("IB")) {
            throw new IllegalArgumentException("link_type must be RoCE or IB, got '" + linkType + "'");
        }
    }

    /** The attributes of the endpoint this engine publishes. */
    public Map<String, String> attributes() {
        List<String> addrs = new ArrayList<>();
        List<String> keys = new ArrayList<>();
        for (RdmaVerbs.Segment s : segments) {
            addrs.add("0x" + Long.toHexString(s.address()));
            keys.add(Integer.toUnsignedString(s.rkey()));
        }
        Map<String, String> m = new LinkedHashMap<>();
        m.put(REMOTE_ADDRS, String.join(",", addrs));
        m.put(RKEYS, String.join(",", keys));
        m.put(LINK_TYPE, linkType);
        m.put(GPU_DIRECT, Boolean.toString(gpuDirect));
        return m;
    }

    /**
     * Reads and checks a peer's rdma endpoint against its layout: a hostile or broken one is refused naming the
     * attribute, before any verbs call.
     *
     * @throws IllegalArgumentException naming the attribute, when one is missing or malformed
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
        List<Long> sizes = e.layout().segmentSizes(); // checks that they add up to regionSize
        Map<String, String> a = e.attributes();
        String[] addrs = required(a, REMOTE_ADDRS).split(",", -1);
        String[] keys = required(a, RKEYS).split(",", -1);
        if (addrs.length != sizes.size() || keys.length != sizes.size()) {
            throw new IllegalArgumentException(REMOTE_ADDRS + " and " + RKEYS + " must name one address and key per "
                    + "segment (" + sizes.size() + "), got " + addrs.length + " and " + keys.length);
        }
        List<RdmaVerbs.Segment> segs = new ArrayList<>();
        for (int i = 0; i < addrs.length; i++) {
            long addr = parseAddress(addrs[i].trim());
            if (Long.compareUnsigned(addr, -sizes.get(i)) > 0) {
                throw new IllegalArgumentException(REMOTE_ADDRS + "[" + i + "] + its segment size overflows 64 bits");
            }
            segs.add(new RdmaVerbs.Segment(addr, 0, parseKey(keys[i].trim())));
        }
        String gdr = a.getOrDefault(GPU_DIRECT, "false").toLowerCase(Locale.ROOT);
        if (!gdr.equals("true") && !gdr.equals("false")) {
            throw new IllegalArgumentException(GPU_DIRECT + " must be true or false, got '" + gdr + "'");
        }
        return new RdmaEndpoint(segs, required(a, LINK_TYPE), gdr.equals("true"));
    }

    private static String required(Map<String, String> a, String key) {
        String v = a.get(key);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException("the rdma endpoint has no " + key);
        }
        return v.trim();
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
