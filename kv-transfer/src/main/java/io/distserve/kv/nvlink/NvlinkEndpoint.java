package io.distserve.kv.nvlink;

import io.distserve.kv.device.IpcExport;
import io.distserve.kv.transfer.EndpointInfo;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * What an {@code nvlink} endpoint carries in {@link EndpointInfo#attributes()}, and its validation: the peer's
 * endpoint arrives over the network in a {@code p2p_connect}, so every field is checked before the driver sees it.
 *
 * @param handle   the prefill engine's CUDA IPC handle of its KV pool (64 bytes; hex in JSON)
 * @param offset   where the region starts inside the exported allocation
 * @param pciBusId the exporting GPU, e.g. {@code 0000:19:00.0}
 * @param hostId   the exporting host ({@link io.distserve.kv.transfer.HostIdentity}): IPC works within one host only
 * @param pid      the exporting process (CUDA cannot open a handle in the process that exported it)
 */
public record NvlinkEndpoint(byte[] handle, long offset, String pciBusId, String hostId, long pid) {

    public static final String HANDLE = "ipc_handle";
    public static final String OFFSET = "ipc_offset";
    public static final String PCI_BUS_ID = "pci_bus_id";
    public static final String HOST_ID = "host_id";
    public static final String PID = "pid";

    private static final Pattern BUS_ID = Pattern.compile("[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]");
    private static final Pattern HEX = Pattern.compile("[0-9a-fA-F]{" + 2 * IpcExport.HANDLE_BYTES + "}");

    public NvlinkEndpoint {
        handle = handle.clone();
    }

    @Override
    public byte[] handle() {
        return handle.clone();
    }

    static NvlinkEndpoint of(IpcExport export, String pciBusId, String hostId, long pid) {
        return new NvlinkEndpoint(export.handle(), export.offset(), pciBusId, hostId, pid);
    }

    /** The attributes of the endpoint this engine publishes. */
    public Map<String, String> attributes() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(HANDLE, HexFormat.of().formatHex(handle));
        m.put(OFFSET, Long.toString(offset));
        m.put(PCI_BUS_ID, pciBusId);
        m.put(HOST_ID, hostId);
        m.put(PID, Long.toString(pid));
        return m;
    }

    /**
     * Reads and checks a peer's nvlink endpoint.
     *
     * @throws IllegalArgumentException naming the attribute, when one is missing or malformed
     */
    public static NvlinkEndpoint parse(EndpointInfo e) {
        if (!NvlinkTransport.NAME.equalsIgnoreCase(e.transport())) {
            throw new IllegalArgumentException("endpoint transport is '" + e.transport() + "', not nvlink");
        }
        if (e.regionSize() <= 0) {
            throw new IllegalArgumentException("region_size must be positive, got " + e.regionSize());
        }
        e.layout(); // segment sizes must add up to the region size
        Map<String, String> a = e.attributes();
        String hex = required(a, HANDLE);
        if (!HEX.matcher(hex).matches()) {
            throw new IllegalArgumentException("attributes." + HANDLE + " must be " + 2 * IpcExport.HANDLE_BYTES
                    + " hex digits (a " + IpcExport.HANDLE_BYTES + "-byte CUDA IPC handle), got " + hex.length()
                    + " characters");
        }
        long offset = number(a, OFFSET);
        if (offset > Long.MAX_VALUE - e.regionSize()) {
            throw new IllegalArgumentException("attributes." + OFFSET + " + region_size overflows");
        }
        String bus = required(a, PCI_BUS_ID);
        if (!BUS_ID.matcher(bus).matches()) {
            throw new IllegalArgumentException("attributes." + PCI_BUS_ID + " '" + abbreviate(bus)
                    + "' is not a PCI bus id (domain:bus:device.function)");
        }
        String host = required(a, HOST_ID);
        if (host.length() > 200) {
            throw new IllegalArgumentException("attributes." + HOST_ID + " is too long");
        }
        long pid = number(a, PID);
        if (pid < 1) {
            throw new IllegalArgumentException("attributes." + PID + " must be a positive process id");
        }
        return new NvlinkEndpoint(HexFormat.of().parseHex(hex), offset, bus.toLowerCase(java.util.Locale.ROOT), host,
                pid);
    }

    private static String required(Map<String, String> a, String key) {
        String v = a.get(key);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException("attributes." + key + " is missing");
        }
        return v.strip();
    }

    private static long number(Map<String, String> a, String key) {
        String v = required(a, key);
        try {
            long n = Long.parseLong(v);
            if (n < 0) {
                throw new IllegalArgumentException("attributes." + key + " must be >= 0, got " + n);
            }
            return n;
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException("attributes." + key + " must be a number, got '" + abbreviate(v) + "'");
        }
    }

    private static String abbreviate(String s) {
        return s.length() > 40 ? s.substring(0, 40) + "..." : s;
    }

    @Override
    public String toString() {
        return "NvlinkEndpoint[" + pciBusId + ", " + hostId + ", pid " + pid + ", offset " + offset + "]";
    }
}
