package io.distserve.registry.consul;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Base64;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The Consul double's documented behaviour, over raw HTTP as a Consul client sees it: what it accepts and rejects,
 * how its HTTP checks move services in and out of {@code ?passing}, blocking queries, the reaper, kv, ACLs and the
 * agent-restart hook.
 */
class ConsulDoubleTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    private ConsulDouble consul;
    private FakeEngineHealth engine;

    @BeforeEach
    void start() throws IOException {
        consul = ConsulDouble.start();
        engine = new FakeEngineHealth();
    }

    @AfterEach
    void stop() {
        consul.close();
        engine.close();
    }

    private HttpResponse<String> send(String method, String path, String body, String token) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(consul.url() + path)).timeout(Duration.ofSeconds(10))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString(body));
        if (token != null) {
            b.header("X-Consul-Token", token);
        }
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    private HttpResponse<String> put(String path, String body) throws Exception {
        return send("PUT", path, body, null);
    }

    private HttpResponse<String> get(String path) throws Exception {
        return send("GET", path, null, null);
    }

    private String service(String id, String extra) {
        return "{\"ID\":\"" + id + "\",\"Name\":\"web\",\"Address\":\"127.0.0.1\",\"Port\":" + engine.port()
                + ",\"Tags\":[\"t1\"],\"Meta\":{\"role\":\"Decode\"}" + extra + "}";
    }

    private String httpCheck(String interval, String deregisterAfter) {
        return ",\"Check\":{\"HTTP\":\"" + engine.healthUrl() + "\",\"Interval\":\"" + interval + "\",\"Timeout\":\"1s\""
                + (deregisterAfter == null ? "" : ",\"DeregisterCriticalServiceAfter\":\"" + deregisterAfter + "\"")
                + "}";
    }

    private static long index(HttpResponse<?> response) {
        return Long.parseLong(response.headers().firstValue("X-Consul-Index").orElseThrow());
    }

    @Test
    void rejectsWhatConsulRejects() throws Exception {
        HttpResponse<String> malformed = put("/v1/agent/service/register", "{\"Name\":\"web\",");
        assertThat(malformed.statusCode()).isEqualTo(400);
        assertThat(malformed.body()).startsWith("Request decode failed");

        HttpResponse<String> noName = put("/v1/agent/service/register", "{\"ID\":\"x\",\"Port\":80}");
        assertThat(noName.statusCode()).isEqualTo(400);
        assertThat(noName.body()).isEqualTo("Missing service name");

        assertThat(put("/v1/agent/service/register", "[1,2]").statusCode()).isEqualTo(400);
        assertThat(put("/v1/agent/service/register", "{\"Name\":\"web\",\"Port\":\"80\"}").statusCode())
                .isEqualTo(400);
        HttpResponse<String> badKey = put("/v1/agent/service/register", "{\"Name\":\"web\",\"Meta\":{\"a.b\":\"1\"}}");
        assertThat(badKey.statusCode()).isEqualTo(400);
        assertThat(badKey.body()).contains("Invalid Service Meta").contains("invalid characters");
        assertThat(put("/v1/agent/service/register", "{\"Name\":\"web\",\"Meta\":{\"consul-x\":\"1\"}}").body())
                .contains("reserved");
        assertThat(put("/v1/agent/service/register", "{\"Name\":\"web\",\"Meta\":{\"k\":\"" + "v".repeat(513)
                + "\"}}").body()).contains("Value is too long");
        HttpResponse<String> noInterval = put("/v1/agent/service/register",
                "{\"Name\":\"web\",\"Check\":{\"HTTP\":\"http://127.0.0.1:1/health\"}}");
        assertThat(noInterval.statusCode()).isEqualTo(400);
        assertThat(noInterval.body()).contains("Interval must be > 0");
        assertThat(put("/v1/agent/service/register",
                "{\"Name\":\"web\",\"Check\":{\"HTTP\":\"http://x/health\",\"Interval\":\"ten\"}}").statusCode())
                .isEqualTo(400);
        assertThat(put("/v1/agent/service/register", "{\"Name\":\"web\",\"Check\":{\"TTL\":\"10s\"}}").body())
                .contains("HTTP checks only");

        assertThat(get("/v1/agent/service/register").statusCode()).isEqualTo(405);
        assertThat(put("/v1/agent/service/deregister/nope", null).statusCode()).isEqualTo(404);
        assertThat(get("/v1/nothing/here").statusCode()).isEqualTo(404);
        assertThat(get("/v1/health/service/web?index=abc").statusCode()).isEqualTo(400);
        assertThat(get("/v1/health/service/web?index=1&wait=forever").statusCode()).isEqualTo(400);

        assertThat(consul.registrations()).isZero();
        assertThat(consul.serviceIds()).isEmpty();
    }

    @Test
    void registeredServicesShowInTheAgentAndTheCatalogFieldNamesCaseInsensitive() throws Exception {
        long before = consul.index();
        assertThat(put("/v1/agent/service/register", "{\"name\":\"web\",\"port\":8080,\"tags\":[\"a\"]}")
                .statusCode()).isEqualTo(200);
        assertThat(put("/v1/agent/service/register", service("web-2", "")).statusCode()).isEqualTo(200);
        assertThat(consul.index()).isGreaterThan(before);

        JsonNode agent = JSON.readTree(get("/v1/agent/services").body());
        assertThat(agent.fieldNames()).toIterable().containsExactly("web", "web-2"); // ID defaults to the name
        assertThat(agent.path("web-2").path("Meta").path("role").asText()).isEqualTo("Decode");
        assertThat(agent.path("web").path("Port").asInt()).isEqualTo(8080);

        HttpResponse<String> catalog = get("/v1/catalog/services");
        assertThat(index(catalog)).isEqualTo(consul.index());
        JsonNode services = JSON.readTree(catalog.body());
        assertThat(services.has("consul")).isTrue();
        assertThat(services.path("web")).extracting(JsonNode::asText).containsExactlyInAnyOrder("a", "t1");

        // a service without checks passes (only the node's serfHealth applies)
        JsonNode passing = JSON.readTree(get("/v1/health/service/web?passing").body());
        assertThat(passing).hasSize(2);
        assertThat(passing.get(0).path("Checks").get(0).path("CheckID").asText()).isEqualTo("serfHealth");
        assertThat(JSON.readTree(get("/v1/health/service/web?tag=t1").body())).hasSize(1);

        assertThat(put("/v1/agent/service/deregister/web", null).statusCode()).isEqualTo(200);
        assertThat(consul.serviceIds()).containsExactly("web-2");
    }

    @Test
    void httpChecksMoveInstancesInAndOutOfPassing() throws Exception {
        put("/v1/agent/service/register", service("web-1", httpCheck("100ms", null)));
        // a new check starts critical, as in Consul, then the first run (at once) makes it passing
        await().atMost(Duration.ofSeconds(3)).until(() -> "passing".equals(consul.checkStatus("web-1")));
        JsonNode passing = JSON.readTree(get("/v1/health/service/web?passing=true").body());
        assertThat(passing).hasSize(1);
        JsonNode check = passing.get(0).path("Checks").get(1);
        assertThat(check.path("CheckID").asText()).isEqualTo("service:web-1");
        assertThat(check.path("Status").asText()).isEqualTo("passing");
        assertThat(check.path("Output").asText()).contains("200");
        assertThat(passing.get(0).path("Service").path("Meta").path("role").asText()).isEqualTo("Decode");
        assertThat(passing.get(0).path("Node").path("Address").asText()).isEqualTo("127.0.0.1");

        engine.status.set(503);
        await().atMost(Duration.ofSeconds(3)).until(() -> "critical".equals(consul.checkStatus("web-1")));
        assertThat(JSON.readTree(get("/v1/health/service/web?passing").body())).isEmpty();
        JsonNode all = JSON.readTree(get("/v1/health/service/web").body());
        assertThat(all).hasSize(1);
        assertThat(all.get(0).path("Checks").get(1).path("Status").asText()).isEqualTo("critical");

        engine.status.set(429); // warning: still not "passing"
        await().atMost(Duration.ofSeconds(3)).until(() -> "warning".equals(consul.checkStatus("web-1")));
        assertThat(JSON.readTree(get("/v1/health/service/web?passing").body())).isEmpty();

        engine.status.set(200);
        await().atMost(Duration.ofSeconds(3)).until(() -> "passing".equals(consul.checkStatus("web-1")));
        // registering again keeps the check's state
        put("/v1/agent/service/register", service("web-1", httpCheck("100ms", null)));
        assertThat(consul.checkStatus("web-1")).isEqualTo("passing");
        assertThat(consul.registrations()).isEqualTo(2);
    }

    @Test
    void blockingQueriesWaitForTheIndexToMoveOrForTheWaitToEnd() throws Exception {
        HttpResponse<String> first = get("/v1/health/service/web?passing");
        long index = index(first);
        assertThat(index).isPositive();

        long t0 = System.nanoTime();
        HttpResponse<String> timedOut = get("/v1/health/service/web?passing&index=" + index + "&wait=300ms");
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(Duration.ofMillis(300));
        assertThat(index(timedOut)).isEqualTo(index);
        assertThat(timedOut.headers().firstValue("X-Consul-KnownLeader")).contains("true");

        CompletableFuture<HttpResponse<String>> blocked = HTTP.sendAsync(HttpRequest.newBuilder(URI.create(
                consul.url() + "/v1/health/service/web?passing&index=" + index + "&wait=5s")).build(),
                HttpResponse.BodyHandlers.ofString());
        Thread.sleep(200);
        assertThat(blocked).isNotDone();
        long t1 = System.nanoTime();
        put("/v1/agent/service/register", service("web-1", ""));
        HttpResponse<String> woken = blocked.get();
        assertThat(Duration.ofNanos(System.nanoTime() - t1)).isLessThan(Duration.ofSeconds(2));
        assertThat(index(woken)).isGreaterThan(index);
        assertThat(JSON.readTree(woken.body())).hasSize(1);
        // index=0 never blocks
        assertThat(index(get("/v1/health/service/web?index=0&wait=5s"))).isEqualTo(index(woken));
    }

    @Test
    void criticalServicesAreDeregisteredAfterTheirDeregisterCriticalServiceAfter() throws Exception {
        engine.status.set(500);
        put("/v1/agent/service/register", service("web-1", httpCheck("100ms", "400ms")));
        put("/v1/agent/service/register", service("web-2", httpCheck("100ms", null)));
        await().atMost(Duration.ofSeconds(3)).until(() -> !consul.serviceIds().contains("web-1"));
        // without DeregisterCriticalServiceAfter a critical service stays
        assertThat(consul.serviceIds()).containsExactly("web-2");
        assertThat(consul.checkStatus("web-2")).isEqualTo("critical");
    }

    @Test
    void anAgentRestartForgetsServicesAndMovesTheIndexOn() throws Exception {
        put("/v1/agent/service/register", service("web-1", httpCheck("100ms", null)));
        long before = consul.index();
        consul.restartAgent();
        assertThat(consul.serviceIds()).isEmpty();
        assertThat(consul.index()).isGreaterThan(before);
        assertThat(JSON.readTree(get("/v1/agent/services").body()).size()).isZero();
        int probes = engine.probes.get();
        Thread.sleep(300);
        assertThat(engine.probes.get()).as("its checks stopped").isLessThanOrEqualTo(probes + 1);

        // a Consul restored from an older snapshot: the index goes backwards, and a query on a newer one waits
        long current = consul.index();
        consul.rewindIndex(3);
        long t0 = System.nanoTime();
        HttpResponse<String> answer = get("/v1/health/service/web?index=" + current + "&wait=200ms");
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(Duration.ofMillis(200));
        assertThat(index(answer)).isEqualTo(3);
    }

    @Test
    void keyValueStore() throws Exception {
        assertThat(get("/v1/kv/distserve/x").statusCode()).isEqualTo(404);
        assertThat(put("/v1/kv/distserve/x", "hello").body()).isEqualTo("true");
        HttpResponse<String> read = get("/v1/kv/distserve/x");
        JsonNode entry = JSON.readTree(read.body()).get(0);
        assertThat(entry.path("Key").asText()).isEqualTo("distserve/x");
        assertThat(new String(Base64.getDecoder().decode(entry.path("Value").asText()))).isEqualTo("hello");
        long modify = entry.path("ModifyIndex").asLong();
        assertThat(index(read)).isEqualTo(modify);
        assertThat(get("/v1/kv/distserve/x?raw").body()).isEqualTo("hello");
        assertThat(put("/v1/kv/distserve/x?cas=0", "again").body()).isEqualTo("false");
        assertThat(put("/v1/kv/distserve/x?cas=" + modify, "again").body()).isEqualTo("true");
        put("/v1/kv/distserve/y", "2");
        assertThat(JSON.readTree(get("/v1/kv/distserve/?recurse").body())).hasSize(2);
        assertThat(send("DELETE", "/v1/kv/distserve/x", null, null).body()).isEqualTo("true");
        assertThat(get("/v1/kv/distserve/x").statusCode()).isEqualTo(404);
        assertThat(put("/v1/kv/", "v").statusCode()).isEqualTo(400);
    }

    @Test
    void aclTokensAreRequiredWhenConfigured() throws Exception {
        consul.close();
        consul = ConsulDouble.start("s3cret", Duration.ofMillis(100));
        assertThat(get("/v1/status/leader").body()).isEqualTo("\"127.0.0.1:8300\"");
        HttpResponse<String> anonymous = put("/v1/agent/service/register", "{\"Name\":\"web\"}");
        assertThat(anonymous.statusCode()).isEqualTo(403);
        assertThat(anonymous.body()).contains("Permission denied");
        HttpResponse<String> wrong = send("PUT", "/v1/agent/service/register", "{\"Name\":\"web\"}", "nope");
        assertThat(wrong.statusCode()).isEqualTo(403);
        assertThat(wrong.body()).isEqualTo("ACL not found");
        assertThat(send("PUT", "/v1/agent/service/register", "{\"Name\":\"web\"}", "s3cret").statusCode())
                .isEqualTo(200);
        assertThat(get("/v1/health/service/web?token=s3cret").statusCode()).isEqualTo(200);
        assertThat(consul.serviceIds()).containsExactly("web");
    }
}
