package io.distserve.kv.rdma;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import java.util.stream.Stream;

/**
 * Whether RDMA can run on this host, and if not, why, in one line: DiSNI's JNI library ({@code libdisni}) must load,
 * and the kernel must show an RDMA device ({@code /sys/class/infiniband}). Whether a given address is an RDMA CM
 * address is found when the transport binds it.
 */
public final class RdmaAvailability {

    /** The checks, each a source of a reason (empty: passed), in the order they are reported. */
    private final List<Supplier<Optional<String>>> checks;

    RdmaAvailability(List<Supplier<Optional<String>>> checks) {
        this.checks = List.copyOf(checks);
    }

    /** This host's: libdisni on java.library.path, then an RDMA device under /sys/class/infiniband. */
    public static RdmaAvailability host() {
        return new RdmaAvailability(List.of(RdmaAvailability::libdisni,
                () -> devices(Path.of("/sys/class/infiniband"))));
    }

    /** The first failed check's reason; empty when RDMA can run. */
    public Optional<String> reason() {
        for (Supplier<Optional<String>> c : checks) {
            Optional<String> r = c.get();
            if (r.isPresent()) {
                return r;
            }
        }
        return Optional.empty();
    }

    static Optional<String> libdisni() {
        try {
            System.loadLibrary("disni");
            return Optional.empty();
        } catch (UnsatisfiedLinkError | SecurityException e) {
            return Optional.of("libdisni (DiSNI's JNI library) is not on java.library.path ("
                    + System.getProperty("java.library.path") + "): build it from DiSNI's sources and pass "
                    + "-Djava.library.path=DIR");
        }
    }

    static Optional<String> devices(Path sysfs) {
        if (!Files.isDirectory(sysfs)) {
            return Optional.of("no RDMA device: " + sysfs + " does not exist (no RDMA NIC, or its driver and "
                    + "ib_core are not loaded; check with ibv_devinfo)");
        }
        try (Stream<Path> devs = Files.list(sysfs)) {
            if (devs.findAny().isEmpty()) {
                return Optional.of("no RDMA device: " + sysfs + " is empty (check with ibv_devinfo)");
            }
        } catch (IOException e) {
            return Optional.of("no RDMA device: " + sysfs + " cannot be read: " + e.getMessage());
        }
        return Optional.empty();
    }
}
