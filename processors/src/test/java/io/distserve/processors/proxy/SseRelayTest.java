package io.distserve.processors.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class SseRelayTest {

    @Test
    void payloadsAreTheDataLinesContent() {
        assertThat(SseRelay.payload("data: {\"a\":1}")).isEqualTo("{\"a\":1}");
        assertThat(SseRelay.payload("data:[DONE]")).isEqualTo(SseRelay.DONE);
        assertThat(SseRelay.payload(": keep-alive")).isNull();
        assertThat(SseRelay.payload("")).isNull();
    }
}
