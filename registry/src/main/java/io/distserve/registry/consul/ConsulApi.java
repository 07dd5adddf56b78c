package io.distserve.registry.consul;

import java.math.BigInteger;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.camel.CamelContext;
import org.apache.camel.CamelExecutionException;
import org.apache.camel.Exchange;
import org.apache.camel.ProducerTemplate;
import org.apache.camel.component.consul.ConsulConstants;
import org.apache.camel.component.consul.endpoint.ConsulAgentActions;
import org.apache.camel.component.consul.endpoint.ConsulHealthActions;
import org.apache.camel.component.consul.endpoint.ConsulStatusActions;
import org.kiwiproject.consul.Consul;
import org.kiwiproject.consul.model.agent.Registration;
import org.kiwiproject.consul.model.health.Service;
import org.kiwiproject.consul.model.health.ServiceHealth;

/**
 * The Consul calls DistServe makes, all through camel-consul's producers on the application's CamelContext:
 * {@code consul:agent} (REGISTER, DEREGISTER, SERVICES), {@code consul:health} (SERVICE_INSTANCES with
 * {@code CamelConsulHealthyOnly}, i.e. {@code ?passing}, and the blocking-query headers {@code CamelConsulIndex} /
 * {@code CamelConsulWait}, whose answer's {@code X-Consul-Index} comes back in {@code CamelConsulIndex}) and
 * {@code consul:status} (LEADER).
 *
 * <p>Where camel-consul is not used, and why: (1) the Consul client the producers use is built here with the
 * kiwiproject builder (camel-consul's own dependency) and handed to the endpoints as {@code consulClient}, instead
 * of letting the endpoint build one from {@code url}/{@code aclToken}/{@code readTimeout}: camel-consul 4.17's
 * {@code ConsulClientConfiguration.createConsulClient} passes {@code readTimeout} and {@code writeTimeout} to
 * {@code withConnectTimeoutMillis}, so a blocking query could not be given a read timeout longer than its wait,
 * and it pings the agent when the client is built, which would fail an engine's start while Consul is still
 * coming up (we retry instead). (2) Watching is a blocking-query loop on our own thread ({@link ConsulDiscovery})
 * calling the health producer, not a Camel consumer: camel-consul has watch consumers only for kv and events, not
 * for service health, and the old ServiceCall / {@code ConsulServiceDiscovery} cloud integration is gone in Camel
 * 4.19. The catalog and kv producers are not needed: the health API answers the instances and their checks in one
 * call (the catalog would need a second call per instance for its health), and nothing is kept in kv (the truth
 * about connected pairs is in the engines, which the proxy asks). No plain {@code java.net.http} call to Consul is
 * made.
 */
public final class ConsulApi implements AutoCloseable {

    private static final AtomicInteger INSTANCES = new AtomicInteger();

    /** One instance of a service as the health API reports it. */
    public record Instance(String serviceId, String address, int port, List<String> tags, Map<String, String> meta) {
        public Instance {
            tags = List.copyOf(tags);
            meta = Map.copyOf(meta);
        }
    }

    /** A health query's answer: the instances and the {@code X-Consul-Index} to block on next. */
    public record Instances(long index, List<Instance> instances) {
        public Instances {
            instances = List.copyOf(instances);
        }
    }

    /** A Consul call that failed (unreachable agent, or an error answer such as 400 or 403). */
    public static final class ConsulCallException extends RuntimeException {
        public ConsulCallException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final CamelContext camel;
    private final ConsulTarget target;
    private final Consul consul;
    private final ProducerTemplate template;
    private final String agentUri;
    private final String healthUri;
    private final String statusUri;
    private final Duration requestTimeout;

    private ConsulApi(CamelContext camel, ConsulTarget target, Consul consul, Duration requestTimeout) {
        this.camel = camel;
        this.target = target;
        this.consul = consul;
        this.requestTimeout = requestTimeout;
        String ref = "distserveConsulClient" + INSTANCES.incrementAndGet();
        camel.getRegistry().bind(ref, Consul.class, consul);
        this.agentUri = "consul:agent?consulClient=#" + ref;
        this.healthUri = "consul:health?consulClient=#" + ref;
        this.statusUri = "consul:status?consulClient=#" + ref;
        this.template = camel.createProducerTemplate();
    }

    /**
     * A client of the agent at {@code target}, on {@code camel}'s consul component. Nothing is sent yet: Consul may
     * still be starting.
     *
     * @param maxWait the longest blocking-query wait that will be asked for; reads may last that long plus a margin
     */
    public static ConsulApi create(CamelContext camel, ConsulTarget target, Duration requestTimeout,
                                   Duration maxWait) {
        Objects.requireNonNull(camel, "camel");
        Objects.requireNonNull(target, "target");
        Consul.Builder builder = Consul.builder()
                .withUrl(target.baseUrl())
                .withPing(false)
                .withConnectTimeoutMillis(requestTimeout.toMillis())
                // a blocking query is held by the agent for up to its wait (plus Consul's jitter of wait/16)
                .withReadTimeoutMillis(maxWait.plus(maxWait.dividedBy(16)).plus(requestTimeout).toMillis())
                .withWriteTimeoutMillis(requestTimeout.toMillis());
        if (target.token() != null) {
            builder.withAclToken(target.token());
        }
        return new ConsulApi(camel, target, builder.build(), requestTimeout);
    }

    public ConsulTarget target() {
        return target;
    }

    /** {@code PUT /v1/agent/service/register}. */
    public void register(Registration registration) {
        call(agentUri, ConsulAgentActions.REGISTER, registration, Map.of(), "registering " + registration.getId());
    }

    /** {@code PUT /v1/agent/service/deregister/:id}. */
    public void deregister(String serviceId) {
        call(agentUri, ConsulAgentActions.DEREGISTER, null, Map.of(ConsulConstants.CONSUL_SERVICE_ID, serviceId),
                "deregistering " + serviceId);
    }

    /** {@code GET /v1/agent/services}: the IDs of the services this agent knows. */
    public Set<String> agentServiceIds() {
        Object body = call(agentUri, ConsulAgentActions.SERVICES, null, Map.of(), "listing the agent's services")
                .getMessage().getBody();
        if (body == null) {
            return Set.of();
        }
        @SuppressWarnings("unchecked")
        Map<String, Service> services = (Map<String, Service>) body;
        return Set.copyOf(services.keySet());
    }

    /** {@code GET /v1/status/leader}: the raft leader's address ("" when there is none). */
    public String leader() {
        Object body = call(statusUri, ConsulStatusActions.LEADER, null, Map.of(), "asking for the leader")
                .getMessage().getBody();
        return body == null ? "" : body.toString();
    }

    /**
     * {@code GET /v1/health/service/:name?passing&index=..&wait=..}: the instances whose every check passes. With
     * {@code index} > 0 the agent holds the request until its index moves past it or {@code wait} ends.
     */
    public Instances passingInstances(String service, long index, Duration wait) {
        Map<String, Object> headers = new HashMap<>();
        headers.put(ConsulConstants.CONSUL_SERVICE, service);
        headers.put(ConsulConstants.CONSUL_HEALTHY_ONLY, true);
        if (index > 0) {
            headers.put(ConsulConstants.CONSUL_INDEX, BigInteger.valueOf(index));
            headers.put(ConsulConstants.CONSUL_WAIT, ConsulSettings.format(wait));
        }
        Exchange answer = call(healthUri, ConsulHealthActions.SERVICE_INSTANCES, null, headers,
                "querying the health of service " + service);
        BigInteger next = answer.getMessage().getHeader(ConsulConstants.CONSUL_INDEX, BigInteger.class);
        List<Instance> out = new ArrayList<>();
        Object body = answer.getMessage().getBody();
        if (body instanceof List<?> list) {
            for (Object o : list) {
                ServiceHealth h = (ServiceHealth) o;
                Service s = h.getService();
                // Consul's rule: an empty service address means "the node's address".
                String address = s.getAddress() == null || s.getAddress().isBlank() ? h.getNode().getAddress()
                        : s.getAddress();
                out.add(new Instance(s.getId(), address, s.getPort(), s.getTags(),
                        s.getMeta() == null ? Map.of() : s.getMeta()));
            }
        }
        return new Instances(next == null ? 0 : next.longValue(), out);
    }

    private Exchange call(String uri, String action, Object body, Map<String, Object> headers, String what) {
        Exchange exchange;
        try {
            exchange = template.request(uri, e -> {
                e.getMessage().setHeader(ConsulConstants.CONSUL_ACTION, action);
                e.getMessage().setHeaders(merge(e.getMessage().getHeaders(), headers));
                if (body != null) {
                    e.getMessage().setBody(body);
                }
            });
        } catch (CamelExecutionException e) {
            throw failure(what, e.getCause() != null ? e.getCause() : e);
        }
        if (exchange.getException() != null) {
            throw failure(what, exchange.getException());
        }
        return exchange;
    }

    private static Map<String, Object> merge(Map<String, Object> a, Map<String, Object> b) {
        Map<String, Object> out = new HashMap<>(a);
        out.putAll(b);
        return out;
    }

    private ConsulCallException failure(String what, Throwable cause) {
        String message = cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
        return new ConsulCallException(what + " at Consul " + target.baseUrl() + " failed: " + message, cause);
    }

    /** Stops the producers and the client's HTTP threads. */
    @Override
    public void close() {
        try {
            template.stop();
        } catch (RuntimeException e) {
            // closing anyway
        }
        consul.destroy();
    }

    @Override
    public String toString() {
        return "ConsulApi[" + target + ", timeout " + requestTimeout + ", camel " + camel.getName() + "]";
    }
}
