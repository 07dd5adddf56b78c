package io.distserve.processors.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class SseRelayTest {

    @Test
    void aPayloadHasUsageOnlyWhenItsUsageIsAnObject() {
        assertThat(SseRelay.hasUsage("{\"choices\":[],\"usage\":{\"prompt_tokens\":3}}")).isTrue();
        assertThat(SseRelay.hasUsage("{\"choices\":[], \"usage\" :  {\"prompt_tokens\":3}}")).isTrue();
        assertThat(SseRelay.hasUsage("{\"choices\":[{\"text\":\"a\"}],\"usage\":null}")).isFalse();
        assertThat(SseRelay.hasUsage("{\"choices\":[{\"text\":\"a\"}]}")).isFalse();
        assertThat(SseRelay.hasUsage("{\"usage\":")).isFalse();
        assertThat(SseRelay.hasUsage("[DONE]")).isFalse();
    }

    @Test
    void payloadsAreTheDataLinesContent() {
        assertThat(SseRelay.payload("data: {\"a\":1}")).isEqualTo("{\"a\":1}");
        assertThat(SseRelay.payload("data:[DONE]")).isEqualTo(SseRelay.DONE);
        assertThat(SseRelay.payload(": keep-alive")).isNull();
        assertThat(SseRelay.payload("")).isNull();
    }
}
