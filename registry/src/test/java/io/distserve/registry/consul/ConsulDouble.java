package io.distserve.registry.consul;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A stand-in for one Consul agent (with its server: one datacenter "dc1", one node) speaking the part of Consul's
 * documented HTTP API that DistServe uses, on loopback. No Consul binary can be fetched where the tests run, so the
 * tests run against this; {@code ConsulDoubleTest} documents (and pins) every behaviour listed here.
 *
 * <p>Endpoints (paths, methods, bodies and status codes as in https://developer.hashicorp.com/consul/api-docs):
 * <ul>
 *   <li>{@code PUT /v1/agent/service/register}: a service definition (field names case-insensitive, as Go's JSON
 *       decoding reads them): {@code Name} required, {@code ID} defaults to the name, {@code Address}, {@code Port},
 *       {@code Tags}, {@code Meta}, {@code Check} and/or {@code Checks}. Registering an existing ID replaces it and
 *       keeps the status of its checks, as Consul does. 400 for malformed JSON ("Request decode failed: ..."), a
 *       missing name ("Missing service name"), invalid meta (Consul's rules: at most 64 pairs, keys of
 *       {@code [A-Za-z0-9_-]} up to 128 characters not starting with "consul-", values up to 512 characters) and
 *       invalid checks (an HTTP check without a positive {@code Interval}, unparseable durations). Only HTTP checks
 *       are supported: any other kind is refused with 400 (real Consul would accept it; we use none).</li>
 *   <li>{@code PUT /v1/agent/service/deregister/:id}: 200; 404 for an unknown ID.</li>
 *   <li>{@code GET /v1/agent/services}: the agent's services by ID.</li>
 *   <li>{@code GET /v1/health/service/:name} with {@code passing} (only instances whose every check, the node's
 *       {@code serfHealth} included, is passing; "warning" is not passing) and {@code tag}.</li>
 *   <li>{@code GET /v1/catalog/services}: service name to the union of its instances' tags, "consul" included.</li>
 *   <li>{@code GET|PUT|DELETE /v1/kv/:key}: values kept as bytes; GET answers base64 {@code Value} (or the bytes
 *       with {@code ?raw}), 404 when missing, {@code ?recurse} for a prefix; PUT answers {@code true} ({@code ?cas}
 *       answers {@code false} on a mismatch, {@code ?flags} kept).</li>
 *   <li>{@code GET /v1/status/leader} and {@code /v1/status/peers}.</li>
 * </ul>
 *
 * <p>Blocking queries (health, catalog, kv reads): every answer carries {@code X-Consul-Index},
 * {@code X-Consul-KnownLeader} and {@code X-Consul-LastContact}. With {@code ?index=N} the request is held until the
 * index moves past N or {@code wait} (Go duration, default 5m, at most 10m) ends, then answered with the current
 * state. The double has one index for everything, raised by each change (register, deregister, a check's status
 * change, a kv write), so it never goes backwards; real Consul keeps one per table and may also wake a query for
 * a change that does not alter its result, which clients must tolerate anyway. No jitter is added to {@code wait}.
 *
 * <p>Checks: each HTTP check runs on the double's own scheduler, the first run at once (Consul staggers it at
 * random within the interval), then every {@code Interval}; {@code Timeout} defaults to 10 s as in Consul. 2xx is
 * passing, 429 warning, anything else (or no answer) critical; a check starts critical unless its definition sets
 * {@code Status}; {@code FailuresBeforeCritical} and {@code SuccessBeforePassing} are honoured. A service whose check
 * has been critical for longer than its {@code DeregisterCriticalServiceAfter} is deregistered by a reaper that runs
 * every {@code reapInterval} (Consul's runs every 30 s and enforces a one-minute minimum; the double honours any
 * duration so tests stay short). Only status changes raise the index; output changes do not.
 *
 * <p>ACLs: when built with a token, every endpoint but {@code /v1/status/*} needs it (header
 * {@code X-Consul-Token}, {@code Authorization: Bearer}, or {@code ?token=}): none is 403 "Permission denied", a
 * wrong one 403 "ACL not found". Unknown paths are 404; wrong methods 405.
 *
 * <p>Test hooks: {@link #restartAgent()} (the agent forgets every service and check, as a {@code -dev} agent or one
 * whose data dir was lost does when restarted; the index keeps increasing, as the servers' does),
 * {@link #rewindIndex(long)} (a Consul restored from an older snapshot), {@link #registrations()},
 * {@link #service(String)}, {@link #checkStatus(String)}, {@link #index()}.
 */
public final class ConsulDouble implements AutoCloseable {

    public static final String NODE = "consul-double";
    public static final String DATACENTER = "dc1";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern META_KEY = Pattern.compile("^[a-zA-Z0-9_-]+$");
    private static final Pattern GO_DURATION = Pattern.compile("(\\d+(?:\\.\\d+)?)(ns|us|µs|ms|s|m|h)");
    private static final Duration DEFAULT_WAIT = Duration.ofMinutes(5);
    private static final Duration MAX_WAIT = Duration.ofMinutes(10);

    private final String aclToken;
    private final HttpServer server;
    private final ExecutorService handlers;
    private final ScheduledExecutorService checks;
    private final HttpClient http;
    private final Object lock = new Object();
    private final Map<String, ServiceEntry> services = new LinkedHashMap<>();
    private final Map<String, KvEntry> kv = new TreeMap<>();
    private final AtomicInteger registrations = new AtomicInteger();
    private volatile long registerDelayMillis;
    private long index = 10;

    private ConsulDouble(String aclToken, Duration reapInterval, int port) throws IOException {
        this.aclToken = aclToken;
        this.http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2))
                .version(HttpClient.Version.HTTP_1_1).build();
        this.handlers = Executors.newCachedThreadPool(daemon("consul-double-http"));
        this.checks = Executors.newScheduledThreadPool(2, daemon("consul-double-checks"));
        this.server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 64);
        server.setExecutor(handlers);
        server.createContext("/", this::handle);
        server.start();
        checks.scheduleWithFixedDelay(this::reap, reapInterval.toMillis(), reapInterval.toMillis(),
                TimeUnit.MILLISECONDS);
    }

    /** A double without ACLs, reaping every 100 ms. */
    public static ConsulDouble start() throws IOException {
        return new ConsulDouble(null, Duration.ofMillis(100), 0);
    }

    /** A double without ACLs on a given loopback port (e.g. one a client was already pointed at). */
    public static ConsulDouble startOn(int port) throws IOException {
        return new ConsulDouble(null, Duration.ofMillis(100), port);
    }

    /** A double whose every non-status endpoint requires {@code aclToken} (null: no ACLs). */
    public static ConsulDouble start(String aclToken, Duration reapInterval) throws IOException {
        return new ConsulDouble(aclToken, reapInterval, 0);
    }

    private static java.util.concurrent.ThreadFactory daemon(String name) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /** The agent's base URL, e.g. {@code http://127.0.0.1:41234}. */
    public String url() {
        return "http://" + server.getAddress().getAddress().getHostAddress() + ":" + server.getAddress().getPort();
    }

    /** The current (global) index. */
    public long index() {
        synchronized (lock) {
            return index;
        }
    }

    /** How many registrations were accepted since the start. */
    public int registrations() {
        return registrations.get();
    }

    /**
     * Every later registration request is taken only after {@code delay} (and answered after that): an agent slow
     * to answer, whose client may give up while the request is still on its way in.
     */
    public void delayRegistrations(Duration delay) {
        registerDelayMillis = delay.toMillis();
    }

    /** The IDs of the registered services. */
    public Set<String> serviceIds() {
        synchronized (lock) {
            return new LinkedHashSet<>(services.keySet());
        }
    }

    /** The service definition as last registered (the request body), or null when not registered. */
    public JsonNode service(String id) {
        synchronized (lock) {
            ServiceEntry s = services.get(id);
            return s == null ? null : s.definition.deepCopy();
        }
    }

    /** The aggregated status of the service's checks ("passing", "warning", "critical"), or null if unknown. */
    public String checkStatus(String serviceId) {
        synchronized (lock) {
            ServiceEntry s = services.get(serviceId);
            return s == null ? null : s.aggregateStatus();
        }
    }

    /**
     * Simulates an agent restart that loses the agent's local state: every service and check registered through the
     * API is forgotten (their deregistration raises the index and wakes blocked queries). KV, kept by the servers,
     * stays.
     */
    public void restartAgent() {
        synchronized (lock) {
            for (ServiceEntry s : services.values()) {
                s.cancelChecks();
            }
            services.clear();
            changed();
        }
    }

    /**
     * Moves the index back to {@code to} (positive), as a Consul restored from an older snapshot does: Consul's
     * documentation tells clients to reset their index to 0 when the answer's index is lower than the one they
     * asked with. Queries blocked on a higher index keep waiting for their {@code wait}, as they would in Consul.
     */
    public void rewindIndex(long to) {
        if (to < 1) {
            throw new IllegalArgumentException("the index stays positive");
        }
        synchronized (lock) {
            index = to;
        }
    }

    @Override
    public void close() {
        server.stop(0);
        checks.shutdownNow();
        handlers.shutdownNow();
        synchronized (lock) {
            for (ServiceEntry s : services.values()) {
                s.cancelChecks();
            }
            lock.notifyAll();
        }
    }

    // ------------------------------------------------------------------------------------------------ state

    /** Raises the index and wakes blocked queries; call with the lock held. */
    private void changed() {
        index++;
        lock.notifyAll();
    }

    private final class ServiceEntry {
        final String id;
        final String name;
        final String address;
        final int port;
        final List<String> tags;
        final Map<String, String> meta;
        final JsonNode definition;
        final List<CheckEntry> checkList = new ArrayList<>();

        ServiceEntry(String id, String name, String address, int port, List<String> tags, Map<String, String> meta,
                     JsonNode definition) {
            this.id = id;
            this.name = name;
            this.address = address;
            this.port = port;
            this.tags = tags;
            this.meta = meta;
            this.definition = definition;
        }

        String aggregateStatus() {
            String worst = "passing";
            for (CheckEntry c : checkList) {
                if ("critical".equals(c.status)) {
                    return "critical";
                }
                if ("warning".equals(c.status)) {
                    worst = "warning";
                }
            }
            return worst;
        }

        void cancelChecks() {
            for (CheckEntry c : checkList) {
                if (c.future != null) {
                    c.future.cancel(true);
                }
            }
        }
    }

    private static final class CheckEntry {
        final String checkId;
        final String name;
        final String serviceId;
        final String url;
        final String method;
        final Duration interval;
        final Duration timeout;
        final Duration deregisterAfter;
        final int failuresBeforeCritical;
        final int successBeforePassing;
        String status;
        String output = "";
        long criticalSinceNanos;
        int failures;
        int successes;
        ScheduledFuture<?> future;

        CheckEntry(String checkId, String name, String serviceId, String url, String method, Duration interval,
                   Duration timeout, Duration deregisterAfter, int failuresBeforeCritical, int successBeforePassing,
                   String status) {
            this.checkId = checkId;
            this.name = name;
            this.serviceId = serviceId;
            this.url = url;
            this.method = method;
            this.interval = interval;
            this.timeout = timeout;
            this.deregisterAfter = deregisterAfter;
            this.failuresBeforeCritical = failuresBeforeCritical;
            this.successBeforePassing = successBeforePassing;
            this.status = status;
            this.criticalSinceNanos = "critical".equals(status) ? System.nanoTime() : 0;
        }
    }

    private record KvEntry(byte[] value, long flags, long createIndex, long modifyIndex) {
    }

    // ------------------------------------------------------------------------------------------------ checks

    private void runCheck(CheckEntry check) {
        String result;
        String output;
        try {
            HttpRequest request = HttpRequest.newBuilder(URI.create(check.url)).timeout(check.timeout)
                    .method(check.method, HttpRequest.BodyPublishers.noBody())
                    .header("User-Agent", "Consul Health Check").header("Accept", "text/plain, text/*, */*").build();
            HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
            int code = response.statusCode();
            result = code / 100 == 2 ? "passing" : code == 429 ? "warning" : "critical";
            output = "HTTP " + check.method + " " + check.url + ": " + code + " Output: " + truncate(response.body());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        } catch (Exception e) {
            result = "critical";
            output = "HTTP " + check.method + " " + check.url + ": " + e;
        }
        apply(check, result, output);
    }

    private static String truncate(String body) {
        return body.length() > 4096 ? body.substring(0, 4096) : body;
    }

    private void apply(CheckEntry check, String result, String output) {
        synchronized (lock) {
            ServiceEntry owner = services.get(check.serviceId);
            if (owner == null || !owner.checkList.contains(check)) {
                return; // deregistered meanwhile
            }
            check.output = output;
            String next = check.status;
            if ("passing".equals(result)) {
                check.failures = 0;
                check.successes++;
                if (check.successes > check.successBeforePassing || "passing".equals(check.status)) {
                    next = "passing";
                }
            } else if ("warning".equals(result)) {
                check.failures = 0;
                check.successes = 0;
                next = "warning";
            } else {
                check.successes = 0;
                check.failures++;
                if (check.failures > check.failuresBeforeCritical) {
                    next = "critical";
                }
            }
            if (!next.equals(check.status)) {
                // on the test's output: why a service went in or out of "passing"
                System.out.println("[consul-double] check " + check.checkId + ": " + check.status + " -> " + next
                        + " (" + output + ")");
                check.status = next;
                check.criticalSinceNanos = "critical".equals(next) ? System.nanoTime() : 0;
                changed();
            }
        }
    }

    private void reap() {
        synchronized (lock) {
            long now = System.nanoTime();
            Iterator<ServiceEntry> it = services.values().iterator();
            boolean any = false;
            while (it.hasNext()) {
                ServiceEntry s = it.next();
                for (CheckEntry c : s.checkList) {
                    if (c.deregisterAfter != null && "critical".equals(c.status)
                            && now - c.criticalSinceNanos >= c.deregisterAfter.toNanos()) {
                        s.cancelChecks();
                        it.remove();
                        any = true;
                        break;
                    }
                }
            }
            if (any) {
                changed();
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ HTTP

    /** A 4xx answer with Consul's plain-text message. */
    private static final class HttpError extends Exception {
        final int status;

        HttpError(int status, String message) {
            super(message, null, false, false);
            this.status = status;
        }
    }

    private void handle(HttpExchange exchange) throws IOException {
        try {
            String path = exchange.getRequestURI().getRawPath();
            Map<String, String> query = query(exchange.getRequestURI().getRawQuery());
            String method = exchange.getRequestMethod();
            if (path.startsWith("/v1/status/")) {
                status(exchange, path, method);
                return;
            }
            authorize(exchange, query);
            if (path.equals("/v1/agent/service/register")) {
                requireMethod(method, "PUT");
                byte[] body = exchange.getRequestBody().readAllBytes();
                if (registerDelayMillis > 0) {
                    Thread.sleep(registerDelayMillis);
                }
                register(body);
                send(exchange, 200, "text/plain", new byte[0], null);
            } else if (path.startsWith("/v1/agent/service/deregister/")) {
                requireMethod(method, "PUT");
                deregister(decode(path.substring("/v1/agent/service/deregister/".length())));
                send(exchange, 200, "text/plain", new byte[0], null);
            } else if (path.equals("/v1/agent/services")) {
                requireMethod(method, "GET");
                sendJson(exchange, agentServices(), null);
            } else if (path.startsWith("/v1/health/service/")) {
                requireMethod(method, "GET");
                long at = block(query);
                String name = decode(path.substring("/v1/health/service/".length()));
                sendJson(exchange, healthService(name, query.containsKey("passing")
                        && !"false".equalsIgnoreCase(query.get("passing")), query.get("tag")), at);
            } else if (path.equals("/v1/catalog/services")) {
                requireMethod(method, "GET");
                long at = block(query);
                sendJson(exchange, catalogServices(), at);
            } else if (path.startsWith("/v1/kv/")) {
                kv(exchange, decode(path.substring("/v1/kv/".length())), method, query);
            } else {
                throw new HttpError(404, "404 page not found");
            }
        } catch (HttpError e) {
            send(exchange, e.status, "text/plain; charset=utf-8", e.getMessage().getBytes(StandardCharsets.UTF_8),
                    null);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            exchange.close();
        } catch (RuntimeException e) {
            send(exchange, 500, "text/plain; charset=utf-8", String.valueOf(e).getBytes(StandardCharsets.UTF_8),
                    null);
        }
    }

    private void authorize(HttpExchange exchange, Map<String, String> query) throws HttpError {
        if (aclToken == null) {
            return;
        }
        String token = exchange.getRequestHeaders().getFirst("X-Consul-Token");
        String authorization = exchange.getRequestHeaders().getFirst("Authorization");
        if (token == null && authorization != null && authorization.startsWith("Bearer ")) {
            token = authorization.substring("Bearer ".length()).trim();
        }
        if (token == null) {
            token = query.get("token");
        }
        if (token == null || token.isEmpty()) {
            throw new HttpError(403, "Permission denied: anonymous token lacks permission");
        }
        if (!token.equals(aclToken)) {
            throw new HttpError(403, "ACL not found");
        }
    }

    private static void requireMethod(String method, String allowed) throws HttpError {
        if (!allowed.equals(method)) {
            throw new HttpError(405, "method " + method + " not allowed");
        }
    }

    private void status(HttpExchange exchange, String path, String method) throws IOException, HttpError {
        requireMethod(method, "GET");
        String self = "127.0.0.1:8300";
        if (path.equals("/v1/status/leader")) {
            sendJson(exchange, JSON.getNodeFactory().textNode(self), null);
        } else if (path.equals("/v1/status/peers")) {
            sendJson(exchange, JSON.createArrayNode().add(self), null);
        } else {
            throw new HttpError(404, "404 page not found");
        }
    }

    /**
     * Waits, for a blocking query, until the index passes {@code ?index} or {@code ?wait} ends; returns the index
     * to answer with.
     */
    private long block(Map<String, String> query) throws HttpError, InterruptedException {
        long min = 0;
        if (query.containsKey("index")) {
            try {
                min = Long.parseLong(query.get("index"));
            } catch (NumberFormatException e) {
                throw new HttpError(400, "Invalid index");
            }
            if (min < 0) {
                throw new HttpError(400, "Invalid index");
            }
        }
        Duration wait = DEFAULT_WAIT;
        if (query.containsKey("wait")) {
            try {
                wait = goDuration(query.get("wait"));
            } catch (IllegalArgumentException e) {
                throw new HttpError(400, "Invalid wait time");
            }
            if (wait.compareTo(MAX_WAIT) > 0) {
                wait = MAX_WAIT;
            }
        }
        synchronized (lock) {
            if (min > 0) {
                long deadline = System.nanoTime() + wait.toNanos();
                while (index <= min) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        break;
                    }
                    TimeUnit.NANOSECONDS.timedWait(lock, left);
                }
            }
            return index;
        }
    }

    // -------------------------------------------------------------------------------- agent service register

    private void register(byte[] body) throws HttpError {
        JsonNode def;
        try {
            def = JSON.readTree(body);
        } catch (JsonProcessingException e) {
            throw new HttpError(400, "Request decode failed: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new HttpError(400, "Request decode failed: " + e.getMessage());
        }
        if (def == null || !def.isObject()) {
            throw new HttpError(400, "Request decode failed: json: cannot unmarshal " + (def == null ? "nothing"
                    : def.getNodeType().name().toLowerCase(Locale.ROOT)) + " into Go value of type"
                    + " structs.ServiceDefinition");
        }
        String name = text(def, "Name");
        if (name == null || name.isEmpty()) {
            throw new HttpError(400, "Missing service name");
        }
        String id = text(def, "ID");
        if (id == null || id.isEmpty()) {
            id = name;
        }
        String address = text(def, "Address");
        JsonNode portNode = field(def, "Port");
        int port = 0;
        if (portNode != null && !portNode.isNull()) {
            if (!portNode.canConvertToInt() || !portNode.isIntegralNumber()) {
                throw new HttpError(400, "Request decode failed: Port: cannot unmarshal " + portNode
                        + " into int");
            }
            port = portNode.intValue();
        }
        List<String> tags = new ArrayList<>();
        JsonNode tagsNode = field(def, "Tags");
        if (tagsNode != null && !tagsNode.isNull()) {
            if (!tagsNode.isArray()) {
                throw new HttpError(400, "Request decode failed: Tags: expected a list of strings");
            }
            for (JsonNode t : tagsNode) {
                if (!t.isTextual()) {
                    throw new HttpError(400, "Request decode failed: Tags: expected a list of strings");
                }
                tags.add(t.asText());
            }
        }
        Map<String, String> meta = meta(field(def, "Meta"));
        List<JsonNode> checkDefs = new ArrayList<>();
        JsonNode check = field(def, "Check");
        if (check != null && !check.isNull()) {
            checkDefs.add(check);
        }
        JsonNode checkArray = field(def, "Checks");
        if (checkArray != null && !checkArray.isNull()) {
            if (!checkArray.isArray()) {
                throw new HttpError(400, "Request decode failed: Checks: expected a list of checks");
            }
            checkArray.forEach(checkDefs::add);
        }
        String serviceId = id;
        synchronized (lock) {
            ServiceEntry previous = services.get(id);
            ServiceEntry entry = new ServiceEntry(id, name, address == null ? "" : address, port, List.copyOf(tags),
                    meta, def.deepCopy());
            for (int i = 0; i < checkDefs.size(); i++) {
                String checkId = checkDefs.size() == 1 ? "service:" + serviceId : "service:" + serviceId + ":" + (i + 1);
                CheckEntry c = check(checkDefs.get(i), checkId, name, serviceId);
                if (previous != null) {
                    // Consul keeps a re-registered check's state.
                    for (CheckEntry old : previous.checkList) {
                        if (old.checkId.equals(c.checkId)) {
                            c.status = old.status;
                            c.output = old.output;
                            c.criticalSinceNanos = old.criticalSinceNanos;
                        }
                    }
                }
                entry.checkList.add(c);
            }
            if (previous != null) {
                previous.cancelChecks();
            }
            services.put(id, entry);
            for (CheckEntry c : entry.checkList) {
                c.future = checks.scheduleWithFixedDelay(() -> runCheck(c), 0, c.interval.toNanos(),
                        TimeUnit.NANOSECONDS);
            }
            registrations.incrementAndGet();
            changed();
        }
    }

    private CheckEntry check(JsonNode def, String defaultId, String serviceName, String serviceId) throws HttpError {
        if (!def.isObject()) {
            throw new HttpError(400, "Request decode failed: Check: expected an object");
        }
        String httpUrl = text(def, "HTTP");
        if (httpUrl == null || httpUrl.isEmpty()) {
            if (text(def, "TTL") != null || field(def, "Args") != null || text(def, "TCP") != null
                    || text(def, "GRPC") != null) {
                throw new HttpError(400, "Invalid check: the Consul double supports HTTP checks only");
            }
            throw new HttpError(400, "Invalid check: TTL must be > 0 for TTL checks");
        }
        Duration interval = duration(def, "Interval", null);
        if (interval == null || interval.isZero() || interval.isNegative()) {
            throw new HttpError(400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or"
                    + " GRPC checks");
        }
        try {
            URI.create(httpUrl).toURL();
        } catch (Exception e) {
            throw new HttpError(400, "Invalid check: invalid HTTP URL " + httpUrl);
        }
        Duration timeout = duration(def, "Timeout", Duration.ofSeconds(10));
        if (timeout.isZero() || timeout.isNegative()) {
            timeout = Duration.ofSeconds(10);
        }
        Duration deregister = duration(def, "DeregisterCriticalServiceAfter", null);
        String method = text(def, "Method");
        String status = text(def, "Status");
        if (status == null || status.isEmpty()) {
            status = "critical";
        } else if (!Set.of("passing", "warning", "critical").contains(status)) {
            throw new HttpError(400, "Invalid check: Status must be passing, warning or critical");
        }
        String id = text(def, "CheckID");
        if (id == null) {
            id = text(def, "ID");
        }
        String name = text(def, "Name");
        return new CheckEntry(id == null || id.isEmpty() ? defaultId : id,
                name == null || name.isEmpty() ? "Service '" + serviceName + "' check" : name, serviceId, httpUrl,
                method == null || method.isEmpty() ? "GET" : method, interval, timeout, deregister,
                integer(def, "FailuresBeforeCritical"), integer(def, "SuccessBeforePassing"), status);
    }

    private static Map<String, String> meta(JsonNode node) throws HttpError {
        Map<String, String> meta = new LinkedHashMap<>();
        if (node == null || node.isNull()) {
            return meta;
        }
        if (!node.isObject()) {
            throw new HttpError(400, "Request decode failed: Meta: expected a map of strings");
        }
        if (node.size() > 64) {
            throw new HttpError(400, "Invalid Service Meta: Node metadata cannot contain more than 64 key/value"
                    + " pairs");
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            String key = e.getKey();
            if (!e.getValue().isTextual()) {
                throw new HttpError(400, "Request decode failed: Meta: expected a map of strings");
            }
            String value = e.getValue().asText();
            if (key.isEmpty()) {
                throw new HttpError(400, "Invalid Service Meta: Key cannot be blank");
            }
            if (!META_KEY.matcher(key).matches()) {
                throw new HttpError(400, "Invalid Service Meta: Key contains invalid characters");
            }
            if (key.length() > 128) {
                throw new HttpError(400, "Invalid Service Meta: Key is too long (limit: 128 characters)");
            }
            if (key.startsWith("consul-")) {
                throw new HttpError(400, "Invalid Service Meta: Key prefix 'consul-' is reserved for internal use");
            }
            if (value.length() > 512) {
                throw new HttpError(400, "Invalid Service Meta: Value is too long (limit: 512 characters)");
            }
            meta.put(key, value);
        }
        return meta;
    }

    private void deregister(String id) throws HttpError {
        synchronized (lock) {
            ServiceEntry removed = services.remove(id);
            if (removed == null) {
                throw new HttpError(404, "Unknown service ID \"" + id + "\"");
            }
            removed.cancelChecks();
            changed();
        }
    }

    // ------------------------------------------------------------------------------------------------ reads

    private ObjectNode serviceJson(ServiceEntry s, boolean agentForm) {
        ObjectNode o = JSON.createObjectNode();
        o.put("ID", s.id);
        o.put("Service", s.name);
        ArrayNode tags = o.putArray("Tags");
        s.tags.forEach(tags::add);
        ObjectNode meta = o.putObject("Meta");
        s.meta.forEach(meta::put);
        o.put("Port", s.port);
        o.put("Address", s.address);
        ObjectNode weights = o.putObject("Weights");
        weights.put("Passing", 1);
        weights.put("Warning", 1);
        o.put("EnableTagOverride", false);
        if (agentForm) {
            o.put("Datacenter", DATACENTER);
        }
        return o;
    }

    private ObjectNode agentServices() {
        ObjectNode out = JSON.createObjectNode();
        synchronized (lock) {
            for (ServiceEntry s : services.values()) {
                out.set(s.id, serviceJson(s, true));
            }
        }
        return out;
    }

    private ArrayNode healthService(String name, boolean passingOnly, String tag) {
        ArrayNode out = JSON.createArrayNode();
        synchronized (lock) {
            for (ServiceEntry s : services.values()) {
                if (!s.name.equals(name) || (tag != null && !s.tags.contains(tag))) {
                    continue;
                }
                if (passingOnly && !"passing".equals(s.aggregateStatus())) {
                    continue;
                }
                ObjectNode entry = out.addObject();
                ObjectNode node = entry.putObject("Node");
                node.put("ID", "00000000-0000-0000-0000-000000000001");
                node.put("Node", NODE);
                node.put("Address", "127.0.0.1");
                node.put("Datacenter", DATACENTER);
                node.putObject("TaggedAddresses").put("lan", "127.0.0.1").put("wan", "127.0.0.1");
                node.putObject("Meta");
                entry.set("Service", serviceJson(s, false));
                ArrayNode checkArray = entry.putArray("Checks");
                ObjectNode serf = checkArray.addObject();
                serf.put("Node", NODE);
                serf.put("CheckID", "serfHealth");
                serf.put("Name", "Serf Health Status");
                serf.put("Status", "passing");
                serf.put("Notes", "");
                serf.put("Output", "Agent alive and reachable");
                serf.put("ServiceID", "");
                serf.put("ServiceName", "");
                serf.putArray("ServiceTags");
                serf.put("Type", "");
                for (CheckEntry c : s.checkList) {
                    ObjectNode co = checkArray.addObject();
                    co.put("Node", NODE);
                    co.put("CheckID", c.checkId);
                    co.put("Name", c.name);
                    co.put("Status", c.status);
                    co.put("Notes", "");
                    co.put("Output", c.output);
                    co.put("ServiceID", s.id);
                    co.put("ServiceName", s.name);
                    ArrayNode st = co.putArray("ServiceTags");
                    s.tags.forEach(st::add);
                    co.put("Type", "http");
                }
            }
        }
        return out;
    }

    private ObjectNode catalogServices() {
        ObjectNode out = JSON.createObjectNode();
        out.putArray("consul");
        synchronized (lock) {
            Map<String, Set<String>> byName = new TreeMap<>();
            for (ServiceEntry s : services.values()) {
                byName.computeIfAbsent(s.name, k -> new LinkedHashSet<>()).addAll(s.tags);
            }
            byName.forEach((name, tags) -> {
                ArrayNode a = out.putArray(name);
                tags.forEach(a::add);
            });
        }
        return out;
    }

    // ------------------------------------------------------------------------------------------------ kv

    private void kv(HttpExchange exchange, String key, String method, Map<String, String> query)
            throws IOException, HttpError, InterruptedException {
        switch (method) {
            case "GET" -> {
                long at = block(query);
                boolean recurse = query.containsKey("recurse");
                ArrayNode out = JSON.createArrayNode();
                byte[] raw = null;
                synchronized (lock) {
                    for (Map.Entry<String, KvEntry> e : kv.entrySet()) {
                        if (recurse ? e.getKey().startsWith(key) : e.getKey().equals(key)) {
                            KvEntry v = e.getValue();
                            raw = v.value();
                            ObjectNode o = out.addObject();
                            o.put("LockIndex", 0);
                            o.put("Key", e.getKey());
                            o.put("Flags", v.flags());
                            if (v.value() == null) {
                                o.putNull("Value");
                            } else {
                                o.put("Value", Base64.getEncoder().encodeToString(v.value()));
                            }
                            o.put("CreateIndex", v.createIndex());
                            o.put("ModifyIndex", v.modifyIndex());
                        }
                    }
                }
                if (out.isEmpty()) {
                    send(exchange, 404, "text/plain", new byte[0], at);
                } else if (query.containsKey("raw") && !recurse) {
                    send(exchange, 200, "application/octet-stream", raw == null ? new byte[0] : raw, at);
                } else {
                    sendJson(exchange, out, at);
                }
            }
            case "PUT" -> {
                if (key.isEmpty()) {
                    throw new HttpError(400, "Missing key name");
                }
                byte[] body = exchange.getRequestBody().readAllBytes();
                long flags = query.containsKey("flags") ? parseLong(query.get("flags"), "Invalid flags") : 0;
                boolean ok;
                synchronized (lock) {
                    KvEntry old = kv.get(key);
                    if (query.containsKey("cas")) {
                        long cas = parseLong(query.get("cas"), "Invalid cas index");
                        ok = cas == 0 ? old == null : old != null && old.modifyIndex() == cas;
                    } else {
                        ok = true;
                    }
                    if (ok) {
                        index++;
                        kv.put(key, new KvEntry(body.length == 0 ? null : body, flags,
                                old == null ? index : old.createIndex(), index));
                        lock.notifyAll();
                    }
                }
                send(exchange, 200, "application/json", Boolean.toString(ok).getBytes(StandardCharsets.UTF_8),
                        null);
            }
            case "DELETE" -> {
                synchronized (lock) {
                    boolean any = query.containsKey("recurse") ? kv.keySet().removeIf(k -> k.startsWith(key))
                            : kv.remove(key) != null;
                    if (any) {
                        changed();
                    }
                }
                send(exchange, 200, "application/json", "true".getBytes(StandardCharsets.UTF_8), null);
            }
            default -> throw new HttpError(405, "method " + method + " not allowed");
        }
    }

    private static long parseLong(String s, String message) throws HttpError {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new HttpError(400, message);
        }
    }

    // ------------------------------------------------------------------------------------------------ helpers

    /** A field by name, case-insensitively (Go's JSON decoding). */
    private static JsonNode field(JsonNode object, String name) {
        JsonNode exact = object.get(name);
        if (exact != null) {
            return exact;
        }
        for (Map.Entry<String, JsonNode> e : object.properties()) {
            if (e.getKey().equalsIgnoreCase(name)) {
                return e.getValue();
            }
        }
        return null;
    }

    private static String text(JsonNode object, String name) throws HttpError {
        JsonNode v = field(object, name);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isTextual()) {
            throw new HttpError(400, "Request decode failed: " + name + ": cannot unmarshal " + v.getNodeType()
                    .name().toLowerCase(Locale.ROOT) + " into string");
        }
        return v.asText();
    }

    private static int integer(JsonNode object, String name) throws HttpError {
        JsonNode v = field(object, name);
        if (v == null || v.isNull()) {
            return 0;
        }
        if (!v.isIntegralNumber()) {
            throw new HttpError(400, "Request decode failed: " + name + ": expected an integer");
        }
        return v.intValue();
    }

    private static Duration duration(JsonNode object, String name, Duration dflt) throws HttpError {
        String s = text(object, name);
        if (s == null || s.isEmpty()) {
            return dflt;
        }
        try {
            return goDuration(s);
        } catch (IllegalArgumentException e) {
            throw new HttpError(400, "Request decode failed: " + name + ": time: invalid duration \"" + s + "\"");
        }
    }

    /** Parses a Go duration ("10s", "1m30s", "250ms"). */
    static Duration goDuration(String s) {
        if (s == null || s.isEmpty()) {
            throw new IllegalArgumentException("empty duration");
        }
        if (s.equals("0")) {
            return Duration.ZERO;
        }
        Matcher m = GO_DURATION.matcher(s);
        int at = 0;
        double nanos = 0;
        while (at < s.length()) {
            if (!m.find(at) || m.start() != at) {
                throw new IllegalArgumentException("invalid duration " + s);
            }
            double n = Double.parseDouble(m.group(1));
            nanos += n * switch (m.group(2)) {
                case "ns" -> 1d;
                case "us", "µs" -> 1e3;
                case "ms" -> 1e6;
                case "s" -> 1e9;
                case "m" -> 60e9;
                default -> 3600e9;
            };
            at = m.end();
        }
        return Duration.ofNanos((long) nanos);
    }

    private static Map<String, String> query(String raw) {
        Map<String, String> out = new LinkedHashMap<>();
        if (raw == null || raw.isEmpty()) {
            return out;
        }
        for (String part : raw.split("&")) {
            int eq = part.indexOf('=');
            String k = decode(eq < 0 ? part : part.substring(0, eq));
            String v = eq < 0 ? "" : decode(part.substring(eq + 1));
            out.put(k, v);
        }
        return out;
    }

    private static String decode(String s) {
        return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }

    private static void sendJson(HttpExchange exchange, JsonNode body, Long index) throws IOException {
        send(exchange, 200, "application/json", JSON.writeValueAsBytes(body), index);
    }

    private static void send(HttpExchange exchange, int status, String type, byte[] body, Long index)
            throws IOException {
        exchange.getResponseHeaders().set("Content-Type", type);
        if (index != null) {
            exchange.getResponseHeaders().set("X-Consul-Index", Long.toString(index));
            exchange.getResponseHeaders().set("X-Consul-KnownLeader", "true");
            exchange.getResponseHeaders().set("X-Consul-LastContact", "0");
        }
        exchange.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        if (body.length > 0) {
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        }
        exchange.close();
    }
}
