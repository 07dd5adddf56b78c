package io.distserve.registry.consul;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.registry.NodeRole;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import org.apache.camel.CamelContext;
import org.apache.camel.impl.DefaultCamelContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** An engine's registration through camel-consul's agent producer, against the Consul double. */
class ConsulRegistrationTest {

    static final ConsulSettings FAST = ConsulSettings.DEFAULTS.withCheckInterval(Duration.ofMillis(100))
            .withCheckTimeout(Duration.ofMillis(500)).withDeregisterAfter(Duration.ofSeconds(1))
            .withSyncInterval(Duration.ofMillis(200)).withBlockingWait(Duration.ofSeconds(1))
            .withRequestTimeout(Duration.ofSeconds(2)).withFailuresBeforeCritical(0);

    private CamelContext camel;
    private ConsulDouble consul;
    private FakeEngineHealth engine;
    private ConsulApi api;
    private ConsulRegistration registration;

    @BeforeEach
    void start() throws IOException {
        camel = new DefaultCamelContext();
        camel.start();
        consul = ConsulDouble.start();
        engine = new FakeEngineHealth();
    }

    @AfterEach
    void stop() throws Exception {
        if (registration != null) {
            registration.close();
        }
        if (api != null) {
            api.close();
        }
        consul.close();
        engine.close();
        camel.close();
    }

    private ConsulRegistration.Engine decode() {
        return new ConsulRegistration.Engine("127.0.0.1", engine.port(), NodeRole.Decode, List.of("tiny"), 16,
                List.of("tcp"), "engine-1");
    }

    private ConsulRegistration register(String url, String token) {
        api = ConsulApi.create(camel, ConsulTarget.parse(url, "distserve", token), FAST.requestTimeout(),
                FAST.blockingWait());
        registration = new ConsulRegistration(api, decode(), FAST);
        registration.start();
        return registration;
    }

    @Test
    void registersAnInstanceWithItsHealthCheckTagsAndMetaThenPasses() {
        ConsulRegistration r = register(consul.url(), null);
        String id = "distserve-127.0.0.1-" + engine.port();
        assertThat(r.serviceId()).isEqualTo(id);
        await().atMost(Duration.ofSeconds(5)).until(() -> consul.serviceIds().contains(id));

        JsonNode sent = consul.service(id);
        assertThat(sent.path("Name").asText()).isEqualTo("distserve");
        assertThat(sent.path("Address").asText()).isEqualTo("127.0.0.1");
        assertThat(sent.path("Port").asInt()).isEqualTo(engine.port());
        assertThat(sent.path("Tags")).extracting(JsonNode::asText)
                .containsExactly("distserve", "role=decode", "model=tiny", "transport=tcp");
        JsonNode meta = sent.path("Meta");
        assertThat(meta.path("role").asText()).isEqualTo("Decode");
        assertThat(meta.path("models").asText()).isEqualTo("tiny");
        assertThat(meta.path("block_size").asText()).isEqualTo("16");
        assertThat(meta.path("transports").asText()).isEqualTo("tcp");
        assertThat(meta.path("engine_id").asText()).isEqualTo("engine-1");
        assertThat(meta.path("url").asText()).isEqualTo("http://127.0.0.1:" + engine.port());
        JsonNode check = sent.path("Check");
        assertThat(check.path("HTTP").asText()).isEqualTo(engine.healthUrl());
        assertThat(check.path("Interval").asText()).isEqualTo("100ms");
        assertThat(check.path("Timeout").asText()).isEqualTo("500ms");
        assertThat(check.path("DeregisterCriticalServiceAfter").asText()).isEqualTo("1s");
        assertThat(check.path("FailuresBeforeCritical").asInt(0)).as("0, Consul's default").isZero();
        assertThat(ConsulRegistration.registration("distserve", decode(), FAST.withFailuresBeforeCritical(2))
                .getCheck().orElseThrow().getFailuresBeforeCritical()).contains(2);

        await().atMost(Duration.ofSeconds(5)).until(() -> "passing".equals(consul.checkStatus(id)));
        assertThat(engine.probes.get()).isPositive();
        await().atMost(Duration.ofSeconds(5)).until(r::registered); // set when the agent has answered
        assertThat(api.leader()).as("the status producer").isEqualTo("127.0.0.1:8300");
    }

    @Test
    void registersAgainWhenTheAgentForgetsItAndDeregistersOnClose() {
        ConsulRegistration r = register(consul.url(), null);
        await().atMost(Duration.ofSeconds(5)).until(() -> consul.serviceIds().contains(r.serviceId()));
        assertThat(consul.registrations()).isEqualTo(1);

        consul.restartAgent();
        assertThat(consul.serviceIds()).isEmpty();
        await().atMost(Duration.ofSeconds(5)).until(() -> consul.serviceIds().contains(r.serviceId()));
        assertThat(consul.registrations()).isEqualTo(2);

        // a sync that finds it registered does not register again
        int probes = consul.registrations();
        await().pollDelay(Duration.ofMillis(600)).atMost(Duration.ofSeconds(2)).until(() -> true);
        assertThat(consul.registrations()).isEqualTo(probes);

        r.close();
        assertThat(consul.serviceIds()).isEmpty();
        assertThat(r.registered()).isFalse();
    }

    @Test
    void deregistersOnCloseWhileItsFirstRegistrationIsStillUnanswered() {
        // the agent takes the registration 1.5 s after it arrives; the engine stops before that: close() must not
        // leave the instance behind (an interrupted request is not an unsent one)
        consul.delayRegistrations(Duration.ofMillis(1500));
        ConsulRegistration r = register(consul.url(), null);
        await().pollDelay(Duration.ofMillis(300)).atMost(Duration.ofSeconds(1)).until(() -> !r.registered());
        r.close();
        registration = null;
        assertThat(consul.registrations()).isEqualTo(1);
        await().pollDelay(Duration.ofMillis(500)).atMost(Duration.ofSeconds(2)).until(() -> true);
        assertThat(consul.serviceIds()).isEmpty();
    }

    @Test
    void keepsTryingUntilConsulIsUp() throws IOException {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        ConsulRegistration r = register("http://127.0.0.1:" + port, null);
        await().pollDelay(Duration.ofMillis(300)).atMost(Duration.ofSeconds(1)).until(() -> !r.registered());
        try (ConsulDouble late = ConsulDouble.startOn(port)) {
            await().atMost(Duration.ofSeconds(10)).until(() -> late.serviceIds().contains(r.serviceId()));
            // the agent holds the service as soon as it has the request; the registration knows once it has the
            // agent's answer, a moment later
            await().atMost(Duration.ofSeconds(5)).until(r::registered);
            r.close();
            registration = null;
            assertThat(late.serviceIds()).isEmpty();
        }
    }

    @Test
    void sendsTheAclToken() throws IOException {
        consul.close();
        consul = ConsulDouble.start("t0ken", Duration.ofMillis(100));
        ConsulRegistration r = register(consul.url(), "t0ken");
        await().atMost(Duration.ofSeconds(5)).until(() -> consul.serviceIds().contains(r.serviceId()));
        r.close();
        api.close();

        registration = register(consul.url(), "wrong");
        await().pollDelay(Duration.ofMillis(500)).atMost(Duration.ofSeconds(2)).until(() -> true);
        assertThat(registration.registered()).isFalse();
        assertThat(consul.serviceIds()).isEmpty();
    }

    @Test
    void refusesToAdvertiseAWildcardAddress() {
        assertThatThrownBy(() -> new ConsulRegistration.Engine("0.0.0.0", 8000, NodeRole.Prefill, List.of("m"), 64,
                List.of("tcp"), "e")).hasMessageContaining("reachable address");
        assertThat(ConsulRegistration.serviceId("distserve", "[::1]", 80)).isEqualTo("distserve---1-80");
    }

    @Test
    void settingsParseConsulDurations() {
        assertThat(ConsulSettings.parseDuration("1m30s")).isEqualTo(Duration.ofSeconds(90));
        assertThat(ConsulSettings.parseDuration("250ms")).isEqualTo(Duration.ofMillis(250));
        assertThat(ConsulSettings.format(Duration.ofMillis(1500))).isEqualTo("1500ms");
        assertThat(ConsulSettings.format(Duration.ofMinutes(1))).isEqualTo("60s");
        assertThatThrownBy(() -> ConsulSettings.parseDuration("5")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ConsulSettings.DEFAULTS.withBlockingWait(Duration.ofMinutes(11)))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ConsulTarget.parse("127.0.0.1:8500", null, null))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ConsulTarget.parse("http://127.0.0.1:8500", "bad name", null))
                .isInstanceOf(IllegalArgumentException.class);
        ConsulTarget t = ConsulTarget.parse("http://127.0.0.1:8500/", "", "secret");
        assertThat(t.service()).isEqualTo("distserve");
        assertThat(t.baseUrl()).isEqualTo("http://127.0.0.1:8500");
        assertThat(t.toString()).doesNotContain("secret");
    }
}
