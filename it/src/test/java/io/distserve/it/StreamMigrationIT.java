package io.distserve.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Hybrid node killed with SIGKILL in the middle of many streams: every stream moves to the other node carrying
 * the tokens it had (resume_token_ids) and completes; no client sees an error, and at temperature 0 every text is
 * the uninterrupted one.
 */
class StreamMigrationIT {

    @TempDir
    static Path dir;

    @Test
    void killingAHybridNodeMidStreamCostsNoClientAnything() throws Exception {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 5, null).withThreads(1).writeTo(model);
        int proxyPort = ServerProcess.freePort();
        ServerProcess proxy = null;
        ServerProcess a = null;
        ServerProcess b = null;
        try {
            proxy = ServerProcess.proxy("migration-proxy", proxyPort, "--serving-strategy", "Hybrid",
                    "--node-table", dir.resolve("nodes.json").toString(), "--log-level", "INFO");
            String url = "http://127.0.0.1:" + proxyPort;
            a = ServerProcess.launchApiServer("migration-a", ServerProcess.freePort(), model, "--proxy-url", url,
                    "--cache-max-entry-count", "0.2");
            b = ServerProcess.launchApiServer("migration-b", ServerProcess.freePort(), model, "--proxy-url", url,
                    "--cache-max-entry-count", "0.2");
            a.healthy();
            b.healthy();
            Http.awaitHealthyNodes(proxy.base, null, 2);

            int streams = 24;
            List<String> bodies = new ArrayList<>();
            List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
            for (int i = 0; i < streams; i++) {
                boolean chat = i % 3 == 0;
                String body = chat
                        ? "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell story " + i
                        + " about the sea, its ports and ships\"}],\"max_tokens\":300,\"temperature\":0,"
                        + "\"ignore_eos\":true,\"stream\":true}"
                        : "{\"model\":\"tiny\",\"prompt\":\"Story " + i + ": the ships of the northern sea \","
                        + "\"max_tokens\":300,\"temperature\":0,\"ignore_eos\":true,\"stream\":true}";
                bodies.add(body);
                String path = chat ? "/v1/chat/completions" : "/v1/completions";
                answers.add(Http.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create(proxy.base + path))
                        .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()));
            }
            Thread.sleep(800);
            a.kill(); // mid-stream for the streams it serves
            List<String> texts = new ArrayList<>();
            for (CompletableFuture<HttpResponse<String>> f : answers) {
                HttpResponse<String> r = f.get(120, TimeUnit.SECONDS);
                assertThat(r.statusCode()).isEqualTo(200);
                List<String> payloads = Http.ssePayloads(r.body());
                assertThat(payloads).as(r.body()).noneMatch(x -> x.contains("\"error\"")).last().isEqualTo("[DONE]");
                texts.add(Http.text(r.body(), true));
            }
            assertThat(proxy.output()).contains("stream moved from " + a.base);
            // the uninterrupted answers, from the surviving node
            for (int i = 0; i < streams; i++) {
                boolean chat = i % 3 == 0;
                String whole = bodies.get(i).replace("\"stream\":true", "\"stream\":false");
                HttpResponse<String> r = Http.post(b.base + (chat ? "/v1/chat/completions" : "/v1/completions"), null,
                        whole);
                assertThat(texts.get(i)).as("stream %d", i).isEqualTo(Http.text(r.body(), false));
            }
            assertThat(Http.metric(b.base, null, "distserve_kv_blocks_used")).isZero();
        } finally {
            for (ServerProcess s : new ServerProcess[] {a, b, proxy}) {
                if (s != null) {
                    s.kill();
                }
            }
        }
    }

    /**
     * DistServe: one of two Decode engines killed with SIGKILL under 50 streams. Each broken stream is prefilled again
     * with the tokens its client had (resume_token_ids) and decoded on the other engine; no client sees an error,
     * every text is the uninterrupted one, and after the lease expiry no block is held anywhere.
     */
    @Test
    void killingADecodeNodeMidStreamCostsNoClientAnything() throws Exception {
        Path model = dir.resolve("ds").resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 6, null).withThreads(1).writeTo(model);
        int proxyPort = ServerProcess.freePort();
        List<ServerProcess> all = new ArrayList<>();
        try {
            ServerProcess proxy = ServerProcess.proxy("ds-migration-proxy", proxyPort, "--serving-strategy",
                    "DistServe", "--node-table", dir.resolve("ds-nodes.json").toString(), "--log-level", "INFO");
            all.add(proxy);
            String url = "http://127.0.0.1:" + proxyPort;
            ServerProcess prefill = ServerProcess.launchApiServer("ds-prefill", ServerProcess.freePort(), model,
                    "--role", "Prefill", "--proxy-url", url, "--cache-max-entry-count", "0.2");
            ServerProcess a = ServerProcess.launchApiServer("ds-decode-a", ServerProcess.freePort(), model,
                    "--role", "Decode", "--proxy-url", url, "--cache-max-entry-count", "0.2");
            ServerProcess b = ServerProcess.launchApiServer("ds-decode-b", ServerProcess.freePort(), model,
                    "--role", "Decode", "--proxy-url", url, "--cache-max-entry-count", "0.2");
            all.addAll(List.of(prefill, a, b));
            prefill.healthy();
            a.healthy();
            b.healthy();
            Http.awaitHealthyNodes(proxy.base, null, 3);

            int streams = 50;
            List<String> bodies = new ArrayList<>();
            List<CompletableFuture<HttpResponse<String>>> answers = new ArrayList<>();
            for (int i = 0; i < streams; i++) {
                boolean chat = i % 3 == 0;
                String body = chat
                        ? "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell story " + i
                        + " about the hills\"}],\"max_tokens\":160,\"temperature\":0,\"ignore_eos\":true,"
                        + "\"stream\":" + (i % 5 != 4) + "}"
                        : "{\"model\":\"tiny\",\"prompt\":\"Story " + i + ": the hills of the south \","
                        + "\"max_tokens\":160,\"temperature\":0,\"ignore_eos\":true,\"stream\":" + (i % 5 != 4) + "}";
                bodies.add(body);
                String path = chat ? "/v1/chat/completions" : "/v1/completions";
                answers.add(Http.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create(proxy.base + path))
                        .timeout(Duration.ofSeconds(180)).header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()));
            }
            // mid-stream for the streams it serves: once it is generating some (the first prefills and the pair's
            // connection take a while on 2 cores; a request still before its first byte is merely retried), and a
            // little later
            org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(50))
                    .until(() -> Http.metric(a.base, null, "distserve_sequences_running") >= 5);
            Thread.sleep(300);
            a.kill();
            List<String> texts = new ArrayList<>();
            for (CompletableFuture<HttpResponse<String>> f : answers) {
                HttpResponse<String> r = f.get(180, TimeUnit.SECONDS);
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                boolean stream = texts.size() % 5 != 4; // a fifth are whole answers: asked again if they break
                if (stream) {
                    List<String> payloads = Http.ssePayloads(r.body());
                    assertThat(payloads).as(r.body()).noneMatch(x -> x.contains("\"error\"")).last()
                            .isEqualTo("[DONE]");
                }
                texts.add(Http.text(r.body(), stream));
            }
            String out = proxy.output();
            assertThat(out).contains("stream moves on from prefill");
            System.out.println("[decode killed under " + streams + " streams] moved: "
                    + out.lines().filter(l -> l.contains("moves on from prefill")).count() + ", of which streams "
                    + out.lines().filter(l -> l.contains("stream moves on from prefill")).count() + ", lost leases "
                    + "prefilled again " + out.lines().filter(l -> l.contains("kv_lease_lost")).count());
            // the uninterrupted answers, through the cluster that is left
            for (int i = 0; i < streams; i++) {
                boolean chat = i % 3 == 0;
                String whole = bodies.get(i).replace("\"stream\":true", "\"stream\":false");
                HttpResponse<String> r = Http.post(proxy.base + (chat ? "/v1/chat/completions" : "/v1/completions"),
                        null, whole);
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                assertThat(texts.get(i)).as("stream %d", i).isEqualTo(Http.text(r.body(), false));
            }
            for (ServerProcess s : List.of(prefill, b)) {
                org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(40)).untilAsserted(() -> {
                    assertThat(Http.metric(s.base, null, "distserve_kv_blocks_used")).as(s.base).isZero();
                    assertThat(Http.metric(s.base, null, "distserve_prefill_leases")).as(s.base).isZero();
                });
            }
        } finally {
            for (ServerProcess s : all) {
                s.kill();
            }
        }
    }
}
