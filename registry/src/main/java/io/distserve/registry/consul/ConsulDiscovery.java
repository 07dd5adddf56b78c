package io.distserve.registry.consul;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeSource;
import io.distserve.registry.NodeStatus;
import io.distserve.registry.NodeUrl;
import io.distserve.registry.NodeView;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A proxy's view of the engines registered in Consul ({@code --consul-url}): a loop of blocking queries on the
 * service's health ({@code ?passing&index=N&wait=...}, see {@link ConsulApi#passingInstances}) whose every answer
 * is merged into the {@link NodeRegistry} beside the nodes added through {@code /nodes/add}: a passing instance
 * that is not in the table is added (as a {@link NodeSource#CONSUL} node, never saved to the node-table file), one
 * whose declaration changed is updated, and a Consul node that is no longer a passing instance is removed. Since
 * Consul answers a blocking query as soon as its index moves, an engine whose check turns critical leaves the
 * routing set within one query (it is no longer "passing"); any number of proxies watching one Consul see the
 * same nodes.
 *
 * <p>Index handling as Consul's documentation asks: the next query blocks on the answer's {@code X-Consul-Index};
 * an index that went backwards (a Consul restored or restarted) or is not positive resets to 0 (a non-blocking
 * query). When Consul cannot be reached the table is left as it is (the nodes may well be serving; the proxy's own
 * health checks still probe them) and the query is retried with back-off.
 *
 * <p>A Consul node removed through {@code /nodes/remove} comes back with the next answer: Consul is its source of
 * truth. A node that was added through the API keeps its entry even when Consul also lists it.
 */
public final class ConsulDiscovery implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(ConsulDiscovery.class);
    private static final long MAX_BACKOFF_MILLIS = 10_000;

    /** What the proxy hears about changes, e.g. to learn or forget connected pairs. */
    public interface Listener {
        /** Nodes were added or updated from Consul (their URLs). */
        default void added(List<String> urls) {
        }

        /** A Consul node left the table. */
        default void removed(String url) {
        }
    }

    private final ConsulApi consul;
    private final NodeRegistry registry;
    private final Duration wait;
    private final Listener listener;
    private final Thread thread;
    private final CountDownLatch firstAnswer = new CountDownLatch(1);
    /** The declaration last applied per URL, for the nodes this discovery put in the table. */
    private final Map<String, NodeStatus> applied = new HashMap<>();
    private final Set<String> warnedIds = new HashSet<>();
    private volatile boolean running;
    private volatile long index;
    private volatile int answers;

    public ConsulDiscovery(ConsulApi consul, NodeRegistry registry, Duration wait, Listener listener) {
        this.consul = Objects.requireNonNull(consul, "consul");
        this.registry = Objects.requireNonNull(registry, "registry");
        this.wait = Objects.requireNonNull(wait, "wait");
        this.listener = listener == null ? new Listener() { } : listener;
        this.thread = new Thread(this::loop, "consul-discovery");
        this.thread.setDaemon(true);
    }

    /** Convenience: a listener that only hears removals. */
    public static Listener onRemoved(Consumer<String> removed) {
        return new Listener() {
            @Override
            public void removed(String url) {
                removed.accept(url);
            }
        };
    }

    /** Starts watching (the first query does not block). */
    public void start() {
        running = true;
        thread.start();
        LOG.info("discovering engines of Consul service '{}' at {} (blocking queries of up to {})",
                consul.target().service(), consul.target().baseUrl(), ConsulSettings.format(wait));
    }

    /** Waits for the first answer from Consul; false when none came within {@code timeout}. */
    public boolean awaitFirstAnswer(Duration timeout) throws InterruptedException {
        return firstAnswer.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The index the next query blocks on. */
    public long index() {
        return index;
    }

    /** How many answers have been merged. */
    public int answers() {
        return answers;
    }

    private void loop() {
        long backoff = 250;
        boolean failing = false;
        while (running) {
            long asked = index;
            ConsulApi.Instances answer;
            try {
                answer = consul.passingInstances(consul.target().service(), asked, wait);
            } catch (RuntimeException e) {
                if (!running) {
                    break;
                }
                if (!failing) {
                    LOG.warn("{}; keeping the {} node(s) discovered so far and retrying", e.getMessage(),
                            applied.size());
                    failing = true;
                }
                sleep(backoff);
                backoff = Math.min(backoff * 2, MAX_BACKOFF_MILLIS);
                continue;
            }
            if (failing) {
                LOG.info("Consul at {} answers again", consul.target().baseUrl());
                failing = false;
            }
            backoff = 250;
            try {
                merge(answer.instances());
            } catch (RuntimeException e) {
                LOG.error("could not merge Consul's answer into the node table", e);
            }
            answers++;
            firstAnswer.countDown();
            long next = answer.index();
            // Consul's rules: never block on an index that is not positive or that went backwards.
            index = next <= 0 || next < asked ? 0 : next;
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Merges one answer (the complete set of passing instances) into the table. */
    void merge(List<ConsulApi.Instance> instances) {
        Map<String, NodeStatus> seen = new LinkedHashMap<>();
        for (ConsulApi.Instance instance : instances) {
            try {
                String url = NodeUrl.normalize("http://" + host(instance.address()) + ":" + instance.port());
                seen.put(url, status(instance));
            } catch (RuntimeException e) {
                if (warnedIds.add(instance.serviceId())) {
                    LOG.warn("ignoring Consul instance {} ({}:{}): {}", instance.serviceId(), instance.address(),
                            instance.port(), e.getMessage());
                }
            }
        }
        List<String> added = new ArrayList<>();
        for (Map.Entry<String, NodeStatus> e : seen.entrySet()) {
            String url = e.getKey();
            NodeStatus status = e.getValue();
            boolean inTable = registry.node(url).isPresent();
            if (!inTable || !status.equals(applied.get(url))) {
                NodeView view = registry.registerDiscovered(url, status);
                if (view.source() == NodeSource.CONSUL) {
                    applied.put(url, status);
                    added.add(url);
                }
            }
        }
        for (String url : new ArrayList<>(applied.keySet())) {
            if (!seen.containsKey(url)) {
                applied.remove(url);
                if (registry.removeDiscovered(url)) {
                    listener.removed(url);
                }
            }
        }
        if (!added.isEmpty()) {
            listener.added(added);
        }
    }

    private static String host(String address) {
        return address.contains(":") && !address.startsWith("[") ? "[" + address + "]" : address;
    }

    /** Reads what the engine advertised (see {@link ConsulRegistration}) into a node status. */
    static NodeStatus status(ConsulApi.Instance instance) {
        Map<String, String> meta = instance.meta();
        String roleText = meta.get(ConsulRegistration.META_ROLE);
        NodeRole role = roleText == null || roleText.isBlank() ? NodeRole.Hybrid : NodeRole.parse(roleText);
        List<String> models = new ArrayList<>();
        String modelText = meta.get(ConsulRegistration.META_MODELS);
        if (modelText != null && !modelText.isBlank()) {
            Arrays.stream(modelText.split(",")).map(String::trim).filter(m -> !m.isEmpty()).forEach(models::add);
        }
        Map<String, JsonNode> extra = new LinkedHashMap<>();
        JsonNodeFactory f = JsonNodeFactory.instance;
        extra.put("consul_service_id", f.textNode(instance.serviceId()));
        for (String key : List.of(ConsulRegistration.META_ENGINE_ID, ConsulRegistration.META_BLOCK_SIZE,
                ConsulRegistration.META_TRANSPORTS)) {
            String v = meta.get(key);
            if (v != null) {
                extra.put(key, f.textNode(v));
            }
        }
        return new NodeStatus(role, models, null, extra);
    }

    /** Stops watching; a query in progress is abandoned (the thread is a daemon and exits when it returns). */
    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
