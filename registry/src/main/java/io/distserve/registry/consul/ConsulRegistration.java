package io.distserve.registry.consul;

import io.distserve.registry.NodeRole;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.kiwiproject.consul.model.agent.ImmutableRegCheck;
import org.kiwiproject.consul.model.agent.ImmutableRegistration;
import org.kiwiproject.consul.model.agent.Registration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An engine's registration with its Consul agent ({@code --consul-url}): a service instance with an HTTP check of
 * the engine's {@code /health} and, in its tags and meta, what a proxy needs to route to it (role, models, KV block
 * size, transports). At start it registers (retrying with back-off while the agent is unreachable); then every
 * {@code syncInterval} it asks the agent whether it still knows the instance and registers again if not (an agent
 * restarted without its data forgets every service registered through its API); at shutdown it deregisters.
 *
 * <p>The instance ID is {@code <service>-<host>-<port>}: unique per running engine (two engines cannot listen on
 * one address), and stable across restarts of the same engine, so a restarted engine replaces its own old
 * instance instead of leaving it to Consul's reaper.
 */
public final class ConsulRegistration implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(ConsulRegistration.class);
    private static final long MAX_BACKOFF_MILLIS = 30_000;

    /** Meta keys, shared with {@link ConsulDiscovery}. */
    static final String META_ROLE = "role";
    static final String META_MODELS = "models";
    static final String META_BLOCK_SIZE = "block_size";
    static final String META_TRANSPORTS = "transports";
    static final String META_ENGINE_ID = "engine_id";
    static final String META_URL = "url";

    /**
     * What the engine advertises.
     *
     * @param host       an address other machines (the proxies, the Consul agent) can reach: never a wildcard
     * @param port       the engine's HTTP port
     * @param role       its role
     * @param models     the model names it serves
     * @param blockSize  tokens per KV block
     * @param transports the KV migration transports it offers (e.g. tcp)
     * @param engineId   the engine's id (changes when it restarts)
     */
    public record Engine(String host, int port, NodeRole role, List<String> models, int blockSize,
                         List<String> transports, String engineId) {
        public Engine {
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(role, "role");
            models = List.copyOf(models);
            transports = List.copyOf(transports);
            if (host.equals("0.0.0.0") || host.equals("::") || host.equals("[::]")) {
                throw new IllegalArgumentException("an engine must advertise a reachable address, not " + host);
            }
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("port must be in [1, 65535], got " + port);
            }
        }

        /** The base URL proxies use. */
        public String url() {
            return "http://" + host + ":" + port;
        }
    }

    private final ConsulApi consul;
    private final ConsulSettings settings;
    private final Registration registration;
    private final ScheduledExecutorService timer;
    private volatile boolean registered;
    private volatile boolean everRegistered;
    /** A registration was sent: the agent may hold the instance even if no answer came back. */
    private volatile boolean registerSent;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    private boolean failing;
    private long backoffMillis = 500;

    public ConsulRegistration(ConsulApi consul, Engine engine, ConsulSettings settings) {
        this.consul = Objects.requireNonNull(consul, "consul");
        this.settings = Objects.requireNonNull(settings, "settings");
        this.registration = registration(consul.target().service(), engine, settings);
        ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1, r -> {
            Thread thread = new Thread(r, "consul-registration");
            thread.setDaemon(true);
            return thread;
        });
        t.setRemoveOnCancelPolicy(true);
        // close() lets a sync in flight finish but cancels the next one
        t.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
        this.timer = t;
    }

    /** The instance ID for an engine at {@code host:port}: Consul's ID characters only. */
    public static String serviceId(String service, String host, int port) {
        String h = host.replace("[", "").replace("]", "").replaceAll("[^A-Za-z0-9.-]", "-");
        return service + "-" + h + "-" + port;
    }

    static Registration registration(String service, Engine engine, ConsulSettings settings) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put(META_ROLE, engine.role().name());
        meta.put(META_MODELS, String.join(",", engine.models()));
        meta.put(META_BLOCK_SIZE, Integer.toString(engine.blockSize()));
        meta.put(META_TRANSPORTS, String.join(",", engine.transports()));
        if (engine.engineId() != null) {
            meta.put(META_ENGINE_ID, engine.engineId());
        }
        meta.put(META_URL, engine.url());
        List<String> tags = new ArrayList<>();
        tags.add("distserve");
        tags.add("role=" + engine.role().name().toLowerCase(Locale.ROOT));
        engine.models().forEach(m -> tags.add("model=" + m));
        engine.transports().forEach(t -> tags.add("transport=" + t));
        String id = serviceId(service, engine.host(), engine.port());
        ImmutableRegCheck.Builder check = ImmutableRegCheck.builder()
                .name("DistServe engine " + engine.url() + "/health")
                .http(engine.url() + "/health")
                .interval(ConsulSettings.format(settings.checkInterval()))
                .timeout(ConsulSettings.format(settings.checkTimeout()))
                .deregisterCriticalServiceAfter(ConsulSettings.format(settings.deregisterAfter()));
        if (settings.failuresBeforeCritical() > 0) {
            check.failuresBeforeCritical(settings.failuresBeforeCritical());
        }
        return ImmutableRegistration.builder()
                .id(id)
                .name(service)
                .address(engine.host().replace("[", "").replace("]", ""))
                .port(engine.port())
                .tags(tags)
                .meta(meta)
                .check(check.build())
                .build();
    }

    public String serviceId() {
        return registration.getId();
    }

    /** What is sent to the agent. */
    public Registration registration() {
        return registration;
    }

    /** Whether the last sync found (or put) the instance in the agent. */
    public boolean registered() {
        return registered;
    }

    /** Registers now (on the registration thread) and keeps the registration alive. */
    public void start() {
        timer.execute(this::sync);
    }

    private void sync() {
        long next;
        try {
            if (!everRegistered || !consul.agentServiceIds().contains(registration.getId())) {
                registerSent = true;
                consul.register(registration);
                if (everRegistered) {
                    LOG.warn("Consul at {} no longer knew {} (agent restarted?); registered it again",
                            consul.target().baseUrl(), registration.getId());
                } else {
                    LOG.info("registered {} as {} in Consul at {} (health check {} every {})",
                            registration.getMeta().get(META_URL), registration.getId(), consul.target().baseUrl(),
                            registration.getCheck().flatMap(c -> c.getHttp()).orElse("?"),
                            ConsulSettings.format(settings.checkInterval()));
                }
                everRegistered = true;
            }
            registered = true;
            failing = false;
            backoffMillis = 500;
            next = settings.syncInterval().toMillis();
        } catch (RuntimeException e) {
            if (!failing) {
                LOG.warn("{}; retrying (backing off up to {} s)", e.getMessage(), MAX_BACKOFF_MILLIS / 1000);
                failing = true;
            } else {
                LOG.debug("{}; retrying in {} ms", e.getMessage(), backoffMillis);
            }
            registered = false;
            next = backoffMillis;
            backoffMillis = Math.min(backoffMillis * 2, MAX_BACKOFF_MILLIS);
        }
        if (!timer.isShutdown()) {
            try {
                timer.schedule(this::sync, next, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.RejectedExecutionException closing) {
                // close() ran meanwhile
            }
        }
    }

    /**
     * Stops syncing and deregisters the instance (best effort: Consul reaps it anyway once its check fails). A sync
     * in flight is let finish first (up to the request timeout): interrupting a registration does not unsend it, and
     * an agent that took it after our deregistration would keep an instance nobody removes. So the deregistration
     * goes out whenever a registration was sent, answered or not.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        timer.shutdown();
        try {
            if (!timer.awaitTermination(settings.requestTimeout().toMillis() + 1000, TimeUnit.MILLISECONDS)) {
                timer.shutdownNow();
                timer.awaitTermination(1, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            timer.shutdownNow();
            Thread.currentThread().interrupt();
        }
        if (!registerSent) {
            return;
        }
        try {
            consul.deregister(registration.getId());
            LOG.info("deregistered {} from Consul at {}", registration.getId(), consul.target().baseUrl());
        } catch (RuntimeException e) {
            LOG.warn("could not deregister {}: {}", registration.getId(), e.getMessage());
        }
        registered = false;
    }
}
