package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.processors.routing.kv.NodePrefixIndex;
import io.distserve.processors.routing.kv.PrefixIndex;
import io.distserve.processors.routing.kv.ProxyTokenizers;
import io.distserve.registry.HealthStatus;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeView;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the proxy's {@link PrefixIndex} current for the {@code kv_aware} strategy: every interval, one
 * {@code GET /distserve/prefix_cache?epoch=&since=} per node in the table, which answers with the changes since the
 * last poll (a few keys, usually) or, for a new or restarted engine, a snapshot. A node whose feed fails, or that
 * is not healthy, is dropped from the index, so routing never prefers a node on what it held before: stale data
 * lives at most one interval. Also fetches each served model's tokenizer once ({@code GET /distserve/tokenizer}).
 * One daemon thread; polls never run on a request's path.
 */
public final class PrefixIndexPoller implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(PrefixIndexPoller.class);
    /** How long after a failed tokenizer fetch for a model to try again. */
    private static final long TOKENIZER_RETRY_NANOS = TimeUnit.SECONDS.toNanos(5);

    private final NodeRegistry registry;
    private final NodeClient client;
    private final PrefixIndex index;
    private final ProxyTokenizers tokenizers;
    private final Duration interval;
    private final Duration timeout;
    private final Map<String, Long> tokenizerFailedAt = new ConcurrentHashMap<>();
    private final ScheduledExecutorService timer;

    public PrefixIndexPoller(NodeRegistry registry, NodeClient client, PrefixIndex index, ProxyTokenizers tokenizers,
                             Duration interval, Duration timeout) {
        this.registry = registry;
        this.client = client;
        this.index = index;
        this.tokenizers = tokenizers;
        this.interval = interval;
        this.timeout = timeout;
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "proxy-prefix-index");
            t.setDaemon(true);
            return t;
        });
    }

    public void start() {
        timer.scheduleWithFixedDelay(this::pollAllSafely, 0, interval.toMillis(), TimeUnit.MILLISECONDS);
    }

    private void pollAllSafely() {
        try {
            pollAll();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            LOG.warn("prefix index poll failed: {}", e.toString());
        }
    }

    /** One round: every node's feed, and the tokenizers of models not loaded yet. */
    public void pollAll() throws InterruptedException {
        Set<String> urls = new HashSet<>();
        for (NodeView node : registry.nodes()) {
            urls.add(node.url());
            if (node.health() == HealthStatus.UNHEALTHY) {
                index.drop(node.url());
                continue;
            }
            poll(node);
            for (String model : node.models()) {
                if (!tokenizers.has(model)) {
                    fetchTokenizer(node, model);
                }
            }
        }
        index.retainOnly(urls);
    }

    private void poll(NodeView node) throws InterruptedException {
        NodePrefixIndex idx = index.node(node.url()).orElse(null);
        String query = idx == null || idx.epoch() == null ? ""
                : "?epoch=" + URLEncoder.encode(idx.epoch(), StandardCharsets.UTF_8) + "&since=" + idx.cursor();
        try {
            JsonNode feed = client.getJson(node.url(), "/distserve/prefix_cache" + query, timeout);
            index.updating(node.url()).apply(feed, System.nanoTime());
        } catch (NodeFailure | IllegalArgumentException e) {
            if (index.node(node.url()).isPresent()) {
                LOG.debug("prefix cache feed of {} failed ({}); routing treats it as holding nothing", node.url(),
                        e.getMessage());
            }
            index.drop(node.url());
        }
    }

    private void fetchTokenizer(NodeView node, String model) throws InterruptedException {
        Long failed = tokenizerFailedAt.get(model);
        if (failed != null && System.nanoTime() - failed < TOKENIZER_RETRY_NANOS) {
            return;
        }
        try {
            JsonNode answer = client.getJson(node.url(), "/distserve/tokenizer", timeout.multipliedBy(5));
            if (!model.equals(answer.path("model").asText())) {
                throw new IllegalArgumentException("the node serves '" + answer.path("model").asText() + "'");
            }
            Map<String, String> files = new LinkedHashMap<>();
            answer.path("files").fields().forEachRemaining(f -> files.put(f.getKey(), f.getValue().asText()));
            tokenizers.load(model, files);
            tokenizerFailedAt.remove(model);
            LOG.info("kv_aware routing: loaded the tokenizer of {} from {}", model, node.url());
        } catch (RuntimeException e) {
            tokenizerFailedAt.put(model, System.nanoTime());
            LOG.warn("kv_aware routing: could not load the tokenizer of {} from {}: {}", model, node.url(),
                    e.getMessage());
        }
    }

    @Override
    public void close() {
        timer.shutdownNow();
        try {
            timer.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
