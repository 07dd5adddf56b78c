package io.distserve.kv.transfer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class TransportRegistryTest {

    /** What the rdma provider will look like on a machine without libdisni. */
    private static final class MissingNativeProvider implements TransportProvider {
        @Override
        public String name() {
            return "rdma";
        }

        @Override
        public boolean isAvailable() {
            return false;
        }

        @Override
        public Optional<String> unavailableReason() {
            return Optional.of("libdisni not found on java.library.path");
        }

        @Override
        public KvTransport create(TransportOptions options) {
            throw new TransportUnavailableException("unavailable");
        }
    }

    @Test
    void discoversTcpThroughServiceLoader() {
        TransportRegistry registry = TransportRegistry.discover();
        assertThat(registry.names()).contains("tcp");
        assertThat(registry.availableNames()).contains("tcp");
        TransportProvider tcp = registry.provider("TCP").orElseThrow();
        assertThat(tcp.isAvailable()).isTrue();
        assertThat(tcp.unavailableReason()).isEmpty();
        try (KvTransport t = registry.create("tcp", TransportOptions.defaults())) {
            assertThat(t.name()).isEqualTo("tcp");
        }
    }

    @Test
    void unavailableTransportsSayWhy() {
        TransportRegistry registry = TransportRegistry.of(new MissingNativeProvider());
        assertThat(registry.names()).containsExactly("rdma");
        assertThat(registry.availableNames()).isEmpty();
        assertThatThrownBy(() -> registry.create("rdma", TransportOptions.defaults()))
                .isInstanceOf(TransportUnavailableException.class)
                .hasMessage("transport 'rdma' is unavailable: libdisni not found on java.library.path");
        assertThatThrownBy(() -> registry.create("nvlink", TransportOptions.defaults()))
                .hasMessageContaining("unknown transport 'nvlink'");
    }

    @Test
    void duplicateNamesAreRejected() {
        assertThatThrownBy(() -> TransportRegistry.of(new MissingNativeProvider(), new MissingNativeProvider()))
                .hasMessageContaining("two transport providers named rdma");
    }

    @Test
    void endpointInfoKeepsTheTokenOutOfToString() {
        EndpointInfo e = new EndpointInfo("tcp", "10.0.0.1", 4000, 128, java.util.List.of(64L, 64L), "s3cret",
                null);
        assertThat(e.toString()).doesNotContain("s3cret").contains("tcp://10.0.0.1:4000");
        assertThat(e.layout().segmentCount()).isEqualTo(2);
        EndpointInfo lying = new EndpointInfo("tcp", "h", 1, 100, java.util.List.of(64L), "t", null);
        assertThatThrownBy(lying::layout).hasMessageContaining("add up to 64");
    }
}
