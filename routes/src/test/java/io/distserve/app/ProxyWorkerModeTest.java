package io.distserve.app;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code distserve.proxy.eventLoop=false}: Camel's own platform-http consumer (every request on a Vert.x worker), for
 * routes of one's own that block without a threads step. The same Hybrid forward works there: the worker waits for
 * the non-blocking forward to end, whole answers and streams alike.
 */
class ProxyWorkerModeTest {

    @TempDir
    Path dir;

    @Test
    void theHybridForwardAlsoRunsOnCamelsWorkerConsumer() throws Exception {
        List<LogEvent> logs = new CopyOnWriteArrayList<>();
        AbstractAppender capture = ProxyHybridForwardTest.startCapture(logs);
        try (FakeNode node = new FakeNode(FakeNode.json(200, FakeNode.COMPLETION));
             TestProxy proxy = new TestProxy(dir, "distserve.proxy.eventLoop = false\n"
                     + "distserve.proxy.healthIntervalSeconds = 3600\n")) {
            HttpResponse<String> added = proxy.post("/nodes/add", "{\"url\":\"" + node.url()
                    + "\",\"status\":{\"role\":\"Hybrid\",\"models\":[\"m\"]}}");
            assertThat(added.statusCode()).as(added.body()).isEqualTo(200);

            HttpResponse<String> whole = proxy.post("/v1/completions", ProxyHybridForwardTest.REQUEST);
            assertThat(whole.statusCode()).isEqualTo(200);
            assertThat(whole.body()).isEqualTo(FakeNode.COMPLETION);

            node.behave(FakeNode.stream(3, 5));
            HttpResponse<java.util.stream.Stream<String>> stream = proxy.http.send(HttpRequest.newBuilder(
                    URI.create(proxy.base + "/v1/completions")).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(ProxyHybridForwardTest.STREAM_REQUEST)).build(),
                    HttpResponse.BodyHandlers.ofLines());
            assertThat(stream.body().filter(l -> l.startsWith("data: ")).toList()).hasSize(4)
                    .last().isEqualTo("data: [DONE]");

            // one line per request, once its answer ended (the route's finally step runs where the forward ended:
            // on the event loop, while Camel's worker waits for it)
            await().atMost(Duration.ofSeconds(5)).until(() -> requestLines(logs, node).size() == 2);
            assertThat(proxy.get("/nodes/status").body()).contains("\"in_flight\":0").contains("\"completed\":2");
        } finally {
            ProxyHybridForwardTest.stopCapture(capture);
        }
    }

    private static List<LogEvent> requestLines(List<LogEvent> logs, FakeNode node) {
        return logs.stream().filter(e -> e.getLoggerName().equals("io.distserve.requests"))
                .filter(e -> e.getMessage().getFormattedMessage().contains(node.url())).toList();
    }
}
