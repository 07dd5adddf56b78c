package io.distserve.kv.nvlink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.kv.device.IpcExport;
import io.distserve.kv.transfer.EndpointInfo;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/** The attributes of an nvlink endpoint, and what a hostile or broken one gets. */
class NvlinkEndpointTest {

    private static final byte[] HANDLE = new byte[IpcExport.HANDLE_BYTES];

    static {
        for (int i = 0; i < HANDLE.length; i++) {
            HANDLE[i] = (byte) (i * 37 + 5);
        }
    }

    private static Map<String, String> good() {
        return new NvlinkEndpoint(HANDLE, 256, "0000:19:00.0", "boot:abc", 4242).attributes();
    }

    private static EndpointInfo endpoint(Map<String, String> attrs) {
        return new EndpointInfo("nvlink", "10.0.0.5", 0, 1 << 20, List.of(1L << 20), "", attrs);
    }

    @Test
    void attributesRoundTripThroughTheEndpoint() {
        Map<String, String> a = good();
        assertThat(a).containsOnlyKeys("ipc_handle", "ipc_offset", "pci_bus_id", "host_id", "pid");
        assertThat(a.get("ipc_handle")).hasSize(128).matches("[0-9a-f]+");
        NvlinkEndpoint back = NvlinkEndpoint.parse(endpoint(a));
        assertThat(back.handle()).isEqualTo(HANDLE);
        assertThat(back.offset()).isEqualTo(256);
        assertThat(back.pciBusId()).isEqualTo("0000:19:00.0");
        assertThat(back.hostId()).isEqualTo("boot:abc");
        assertThat(back.pid()).isEqualTo(4242);
        // upper-case hex and bus ids are the same endpoint
        a.put("ipc_handle", a.get("ipc_handle").toUpperCase());
        a.put("pci_bus_id", "0000:9A:00.0");
        assertThat(NvlinkEndpoint.parse(endpoint(a)).pciBusId()).isEqualTo("0000:9a:00.0");
    }

    static Stream<Arguments> hostile() {
        String hex = good().get("ipc_handle");
        return Stream.of(
                Arguments.of("ipc_handle", null, "ipc_handle is missing"),
                Arguments.of("ipc_handle", hex.substring(2), "128 hex digits"),
                Arguments.of("ipc_handle", hex + "00", "128 hex digits"),
                Arguments.of("ipc_handle", "zz" + hex.substring(2), "128 hex digits"),
                Arguments.of("ipc_offset", "-1", "must be >= 0"),
                Arguments.of("ipc_offset", "ten", "must be a number"),
                Arguments.of("ipc_offset", Long.toString(Long.MAX_VALUE), "overflows"),
                Arguments.of("pci_bus_id", "GPU-0", "not a PCI bus id"),
                Arguments.of("pci_bus_id", "0000:19:00.0; rm -rf /", "not a PCI bus id"),
                Arguments.of("host_id", "", "host_id is missing"),
                Arguments.of("host_id", "h".repeat(300), "too long"),
                Arguments.of("pid", "0", "positive process id"),
                Arguments.of("pid", "1e9", "must be a number"));
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("hostile")
    void malformedAttributesAreRefusedNamingThem(String key, String value, String message) {
        Map<String, String> a = new HashMap<>(good());
        if (value == null) {
            a.remove(key);
        } else {
            a.put(key, value);
        }
        assertThatThrownBy(() -> NvlinkEndpoint.parse(endpoint(a)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(message);
    }

    @Test
    void aTcpEndpointOrAnInconsistentRegionIsNotAnNvlinkEndpoint() {
        assertThatThrownBy(() -> NvlinkEndpoint.parse(new EndpointInfo("tcp", "h", 1, 10, List.of(10L), "t", good())))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not nvlink");
        assertThatThrownBy(() -> NvlinkEndpoint.parse(new EndpointInfo("nvlink", "h", 0, 10, List.of(4L), "", good())))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("add up");
        assertThatThrownBy(() -> NvlinkEndpoint.parse(new EndpointInfo("nvlink", "h", 0, 0, List.of(1L), "", good())))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("region_size");
    }
}
