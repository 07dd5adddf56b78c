package io.distserve.app;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.camel.main.BaseMainSupport;
import org.apache.camel.main.Main;
import org.apache.camel.main.MainListenerSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CamelServersTest {

    /** --properties FILE overrides the built-in application.properties (Camel lets the first location win). */
    @Test
    void aPropertiesFileOverridesTheDefaults() throws Exception {
        Path dir = Files.createTempDirectory("camel-servers");
        Path file = dir.resolve("override.properties");
        Files.writeString(file, "distserve.proxy.healthIntervalSeconds = 1\n");
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Main main = CamelServers.newMain(CamelServersTest.class, "127.0.0.1", port, "classpath:no-routes-*.yaml",
                file);
        main.configure().withDurationMaxSeconds(1);
        List<String> seen = new ArrayList<>();
        main.addMainListener(new MainListenerSupport() {
            @Override
            public void beforeConfigure(BaseMainSupport m) {
                var pc = m.getCamelContext().getPropertiesComponent();
                seen.add(pc.resolveProperty("distserve.proxy.healthIntervalSeconds").orElse(null));
                // a key the file does not set keeps its default
                seen.add(pc.resolveProperty("distserve.proxy.healthTimeoutSeconds").orElse(null));
            }
        });
        main.run();
        assertThat(seen).containsExactly("1", "2");
    }
}
