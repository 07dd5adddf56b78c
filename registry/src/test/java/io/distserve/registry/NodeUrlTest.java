package io.distserve.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class NodeUrlTest {

    @ParameterizedTest
    @CsvSource({
            "http://127.0.0.1:23333, http://127.0.0.1:23333",
            "http://127.0.0.1:23333/, http://127.0.0.1:23333",
            "'  HTTP://Node-A.Example:8000//  ', http://node-a.example:8000",
            "https://gpu1:443/engine/, https://gpu1:443/engine",
            "http://[::1]:9000, http://[::1]:9000",
    })
    void normalizesSchemeHostAndTrailingSlash(String raw, String expected) {
        assertThat(NodeUrl.normalize(raw)).isEqualTo(expected);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "   ", "127.0.0.1:23333", "ftp://host:21", "http://host", "http://:8000",
            "http://host:0", "http://host:70000", "http://user:pw@host:80", "http://host:80/?a=1",
            "http://host:80/#x", "http://ho st:80", "file:///etc/passwd"})
    void refusesWhatIsNotAnHttpBaseUrlWithHostAndPort(String raw) {
        assertThatThrownBy(() -> NodeUrl.normalize(raw))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("node url");
    }

    @org.junit.jupiter.api.Test
    void messagesSayWhatIsWrong() {
        assertThatThrownBy(() -> NodeUrl.normalize(null)).hasMessageContaining("required");
        assertThatThrownBy(() -> NodeUrl.normalize("ftp://h:1")).hasMessageContaining("http or https");
        assertThatThrownBy(() -> NodeUrl.normalize("http://h")).hasMessageContaining("port");
    }
}
