package io.distserve.processors.disagg;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.openai.OpenAiException;
import org.junit.jupiter.api.Test;

class RdmaSettingsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void theProxysFlagsTravelAsRdmaConfigAndComeBack() throws Exception {
        RdmaSettings s = new RdmaSettings("IB", true);
        assertThat(RdmaSettings.parse(s.toJson(JSON))).isEqualTo(s);
        assertThat(RdmaSettings.parse(JSON.readTree("{\"link_type\":\"roce\"}"))).isEqualTo(RdmaSettings.DEFAULTS);
        assertThat(RdmaSettings.parse(null)).isNull();
    }

    @Test
    void aMalformedRdmaConfigIsA400NamingTheField() {
        String[][] cases = {{"[]", "rdma_config"}, {"{\"link_type\":7}", "rdma_config.link_type"},
                {"{\"link_type\":\"Ethernet\"}", "rdma_config.link_type"},
                {"{\"disable_gdr\":\"yes\"}", "rdma_config.disable_gdr"}};
        for (String[] c : cases) {
            assertThatThrownBy(() -> RdmaSettings.parse(JSON.readTree(c[0]))).as(c[0])
                    .isInstanceOfSatisfying(OpenAiException.class, e -> {
                        assertThat(e.status()).isEqualTo(400);
                        assertThat(e.param()).isEqualTo(c[1]);
                    });
        }
    }
}
