package io.distserve.processors.proxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.proxy.MigrationProtocolChoice.NoCommonTransport;
import io.distserve.processors.proxy.MigrationProtocolChoice.Offer;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** The one rule that picks a pair's KV transport, as a table. */
class MigrationProtocolChoiceTest {

    private static Offer offer(String id, String transports, String host) {
        return new Offer(id, transports.isEmpty() ? List.of() : Arrays.asList(transports.split("\\+")),
                host.equals("-") ? null : host);
    }

    @ParameterizedTest(name = "{0}: P[{1}]@{2} D[{3}]@{4} -> {5}")
    @CsvSource(delimiter = '|', value = {
            // setting | prefill offers | prefill host | decode offers | decode host | candidates, best first
            "auto   | nvlink+tcp | h1 | nvlink+tcp | h1 | nvlink,tcp",
            "AUTO   | nvlink+tcp | h1 | nvlink+tcp | h2 | tcp",          // two hosts: no CUDA IPC
            "auto   | nvlink+tcp | h1 | tcp        | h1 | tcp",          // a CPU decode engine
            "auto   | tcp        | h1 | nvlink+tcp | h1 | tcp",
            "auto   | nvlink+tcp | -  | nvlink+tcp | -  | tcp",          // older engines: host unknown
            "auto   | nvlink+rdma+tcp | h1 | nvlink+rdma+tcp | h2 | rdma,tcp",
            "auto   | nvlink+rdma+tcp | h1 | nvlink+rdma+tcp | h1 | nvlink,rdma,tcp",
            "tcp    | nvlink+tcp | h1 | nvlink+tcp | h1 | tcp",
            "TCP    | tcp        | h1 | tcp        | h9 | tcp",
            "NVLINK | nvlink+tcp | h1 | nvlink+tcp | h1 | nvlink",
            "NVLink | nvlink+tcp | h1 | nvlink+tcp | h1 | nvlink",       // LMDeploy's docs spell it so
            "nvlink | nvlink+tcp | h1 | nvlink+tcp | h2 | NONE",
            "nvlink | tcp        | h1 | nvlink+tcp | h1 | NONE",
            "RDMA   | nvlink+tcp | h1 | nvlink+tcp | h1 | NONE",
            "auto   | nvlink     | h1 | nvlink     | h2 | NONE",
            "auto   | tcp        | h1 |            | h1 | NONE"})
    void theRule(String setting, String p, String ph, String d, String dh, String expected) {
        Offer prefill = offer("P", p == null ? "" : p, ph);
        Offer decode = offer("D", d == null ? "" : d, dh);
        if (expected.equals("NONE")) {
            assertThatThrownBy(() -> MigrationProtocolChoice.candidates(setting, prefill, decode))
                    .isInstanceOf(NoCommonTransport.class)
                    .hasMessageContaining("prefill engine P (offers " + prefill.transports() + ")")
                    .hasMessageContaining("decode engine D (offers " + decode.transports() + ")");
        } else {
            assertThat(MigrationProtocolChoice.candidates(setting, prefill, decode))
                    .containsExactly(expected.split(","));
        }
    }

    @Test
    void forcedNvlinkAcrossHostsSaysWhy() {
        assertThatThrownBy(() -> MigrationProtocolChoice.candidates("NVLINK", offer("P", "nvlink+tcp", "h1"),
                offer("D", "nvlink+tcp", "h2"))).hasMessageContaining("one host").hasMessageContaining("h1")
                .hasMessageContaining("h2");
    }

    @Test
    void offersAreReadFromEngineInfoAndSettingsAreChecked() throws Exception {
        Offer o = Offer.of(new ObjectMapper().readTree(
                "{\"engine_id\":\"E\",\"transports\":[\"NVLink\",\"tcp\"],\"host_id\":\"boot:x\"}"));
        assertThat(o).isEqualTo(new Offer("E", List.of("nvlink", "tcp"), "boot:x"));
        Offer old = Offer.of(new ObjectMapper().readTree("{\"engine_id\":\"E\",\"transports\":[\"tcp\"]}"));
        assertThat(old.hostId()).isNull();
        assertThat(MigrationProtocolChoice.normalize("Auto")).isEqualTo("auto");
        assertThatThrownBy(() -> MigrationProtocolChoice.normalize("udp"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("AUTO, TCP, NVLINK, RDMA");
    }
}
