package io.distserve.kv.transfer;

import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Which host (operating-system instance) this process runs on, for transports that work only between processes of
 * one host (CUDA IPC). Linux's boot id is the same for every process and container of one running kernel and
 * different everywhere else; elsewhere the host name stands in.
 */
public final class HostIdentity {

    private static final Path BOOT_ID = Path.of("/proc/sys/kernel/random/boot_id");

    private HostIdentity() {
    }

    /** {@code boot:<boot id>} on Linux, else {@code host:<host name>}. */
    public static String local() {
        try {
            if (Files.isReadable(BOOT_ID)) {
                String id = Files.readString(BOOT_ID, StandardCharsets.US_ASCII).strip();
                if (!id.isEmpty()) {
                    return "boot:" + id;
                }
            }
        } catch (IOException | SecurityException ignored) {
            // fall back to the host name
        }
        try {
            return "host:" + InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "host:unknown";
        }
    }
}
