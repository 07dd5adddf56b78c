package io.distserve.app;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.http.ApiKeyCheck;
import io.distserve.processors.http.ErrorResponse;
import io.distserve.processors.http.EventLoopHttpEngine;
import io.distserve.processors.metrics.PrometheusScrape;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.processors.openai.RequestKind;
import io.distserve.processors.proxy.ChooseNode;
import io.distserve.processors.proxy.ConnectPair;
import io.distserve.processors.proxy.DecodeCall;
import io.distserve.processors.proxy.ForwardHybrid;
import io.distserve.processors.proxy.NextAttempt;
import io.distserve.processors.proxy.NodeStreams;
import io.distserve.processors.proxy.InFlightMigrations;
import io.distserve.processors.proxy.NodeClient;
import io.distserve.processors.proxy.PairConnections;
import io.distserve.processors.proxy.PrefillCall;
import io.distserve.processors.proxy.ProxyAdmin;
import io.distserve.processors.proxy.ProxyIngest;
import io.distserve.processors.proxy.ReleaseCall;
import io.distserve.processors.proxy.RespondFromPrefill;
import io.distserve.processors.routing.NodeRouter;
import io.distserve.processors.routing.RoutingStrategies;
import io.distserve.processors.routing.RoutingStrategy;
import io.distserve.processors.routing.kv.KvAwareStrategy;
import io.distserve.processors.routing.kv.PrefixIndex;
import io.distserve.processors.routing.kv.ProxyTokenizers;
import io.distserve.processors.proxy.PrefixIndexPoller;
import java.util.Random;
import io.distserve.registry.HealthCheckSettings;
import io.distserve.registry.HealthChecker;
import io.distserve.registry.HttpHealthProbe;
import io.distserve.registry.NodeRegistry;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeTableFile;
import io.distserve.registry.TimeSource;
import io.distserve.processors.cluster.ConnectedPairsLearner;
import io.distserve.registry.consul.ConsulApi;
import io.distserve.registry.consul.ConsulDiscovery;
import io.distserve.registry.consul.ConsulSettings;
import java.util.List;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.camel.builder.ThreadPoolProfileBuilder;
import org.apache.camel.component.micrometer.MicrometerConstants;
import org.apache.camel.component.platform.http.PlatformHttpConstants;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpRouter;
import org.apache.camel.main.BaseMainSupport;
import org.apache.camel.main.Main;
import org.apache.camel.main.MainListenerSupport;
import org.apache.camel.spi.PropertiesComponent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code serve proxy}: the node table (kept in a file across restarts, health-checked), the routing strategy, the
 * (prefill, decode) connection pool, and the processors that proxy.camel.yaml names, on Camel Main.
 */
public final class ProxyApplication {

    private static final Logger LOG = LoggerFactory.getLogger(ProxyApplication.class);

    private final ProxyServerSettings settings;
    private volatile Main main;

    public ProxyApplication(ProxyServerSettings settings) {
        this.settings = settings;
    }

    public int run() throws Exception {
        Main m = CamelServers.newMain(ProxyApplication.class, settings.host(), settings.port(),
                CamelServers.routes(settings.routes(), settings.extraRoutes(), ProxyServerSettings.DEFAULT_ROUTES),
                settings.propertiesFile());
        m.addOverrideProperty("camel.main.name", "distserve-proxy");
        m.addOverrideProperty("distserve.proxy.servingStrategy", settings.servingStrategy());
        m.addMainListener(new Lifecycle());
        this.main = m;
        m.run();
        return m.getExitCode();
    }

    public void stop() {
        Main m = main;
        if (m != null) {
            m.completed();
        }
    }

    /** Builds and binds everything once the properties are known; starts and stops the health checker. */
    private final class Lifecycle extends MainListenerSupport {
        private HealthChecker health;
        private ExecutorService background;
        private NodeRegistry registry;
        private PairConnections pairs;
        private ConnectedPairsLearner learner;
        private ConsulApi consulApi;
        private ConsulDiscovery discovery;
        private PrefixIndexPoller prefixPoller;
        private ProxyTokenizers tokenizers;

        @Override
        public void beforeConfigure(BaseMainSupport mainSupport) {
            PropertiesComponent props = mainSupport.getCamelContext().getPropertiesComponent();
            Duration connect = Duration.ofMillis(number(props, "distserve.proxy.connectTimeoutMillis", 2000));
            Duration prefillTimeout = Duration.ofSeconds(number(props, "distserve.proxy.prefillTimeoutSeconds", 120));
            Duration firstByte = Duration.ofSeconds(number(props, "distserve.proxy.firstByteTimeoutSeconds", 120));
            Duration control = Duration.ofSeconds(number(props, "distserve.proxy.controlTimeoutSeconds", 10));
            String key = settings.apiKeys().isEmpty() ? null : settings.apiKeys().get(0);

            ObjectMapper json = new ObjectMapper();
            registry = new NodeRegistry(new NodeTableFile(settings.nodeTable()), TimeSource.system(),
                    NodeRegistry.DEFAULT_LATENCY_WINDOW,
                    Duration.ofSeconds(number(props, "distserve.proxy.latencyMaxAgeSeconds", 30)));
            NodeClient client = new NodeClient(connect, key, json);
            PrometheusMeterRegistry meters = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
            RoutingStrategy strategy;
            if (RoutingStrategies.isKvAware(settings.routingStrategy())) {
                // engines' prefix caches, polled into an index; the models' tokenizers fetched from the engines
                PrefixIndex prefixIndex = new PrefixIndex();
                tokenizers = new ProxyTokenizers();
                strategy = new KvAwareStrategy(prefixIndex, tokenizers::forModel, new KvAwareStrategy.Weights(
                        decimal(props, "distserve.proxy.kvAware.prefillTokenWeight", 1.0),
                        decimal(props, "distserve.proxy.kvAware.inFlightWeight", 256),
                        decimal(props, "distserve.proxy.kvAware.kvUsageTokenWeight", 0.05)),
                        Duration.ofMillis(number(props, "distserve.proxy.kvAware.expectMillis", 2000)), new Random(),
                        meters);
                prefixPoller = new PrefixIndexPoller(registry, client, prefixIndex, tokenizers,
                        Duration.ofMillis(number(props, "distserve.proxy.kvAware.pollIntervalMillis", 500)), control);
            } else {
                strategy = RoutingStrategies.byName(settings.routingStrategy());
            }
            NodeRouter router = new NodeRouter(registry, strategy);
            pairs = new PairConnections(client, control,
                    (int) number(props, "distserve.proxy.pairConnectAttempts", 3), settings.migrationProtocol(),
                    settings.rdma());
            learner = new ConnectedPairsLearner(registry, client, pairs, control);
            InFlightMigrations migrations = new InFlightMigrations();
            background = Executors.newFixedThreadPool(4, r -> {
                Thread t = new Thread(r, "proxy-background");
                t.setDaemon(true);
                return t;
            });
            health = new HealthChecker(registry, new HttpHealthProbe(
                    Duration.ofSeconds(number(props, "distserve.proxy.healthTimeoutSeconds", 2)), key),
                    HealthCheckSettings.DEFAULTS
                            .withInterval(Duration.ofSeconds(number(props, "distserve.proxy.healthIntervalSeconds", 5)))
                            .withProbeTimeout(Duration.ofSeconds(number(props, "distserve.proxy.healthTimeoutSeconds", 2)))
                            .withUnhealthyAfter((int) number(props, "distserve.proxy.unhealthyAfterFailures", 2)),
                    TimeSource.system());

            RequestMetrics metrics = new RequestMetrics(meters);
            Gauge.builder("distserve.proxy.nodes", registry, NodeRegistry::size).description("Nodes in the table")
                    .register(meters);
            Gauge.builder("distserve.proxy.migrations_in_flight", migrations, InFlightMigrations::size)
                    .description("Prefill leases between prefill and decode").register(meters);
            OpenAiRequestParser parser = new OpenAiRequestParser(json);

            org.apache.camel.spi.Registry m = mainSupport.getCamelContext().getRegistry();
            m.bind(MicrometerConstants.METRICS_REGISTRY_NAME, meters);
            m.bind("apiKeyCheck", new ApiKeyCheck(settings.apiKeys()));
            m.bind("errorResponse", new ErrorResponse(new OpenAiResponses(json), metrics));
            m.bind("ingestCompletion", new ProxyIngest(RequestKind.COMPLETION, parser));
            m.bind("ingestChat", new ProxyIngest(RequestKind.CHAT, parser));
            m.bind("chooseHybrid", new ChooseNode(router, NodeRole.Hybrid));
            m.bind("choosePrefill", new ChooseNode(router, NodeRole.Prefill));
            m.bind("chooseDecode", new ChooseNode(router, NodeRole.Decode));
            org.apache.camel.CamelContext context = mainSupport.getCamelContext();
            if (Boolean.parseBoolean(props.resolveProperty("distserve.proxy.eventLoop").orElse("true"))) {
                // the platform-http routes run on the Vert.x event loop: what blocks goes behind a threads step
                EventLoopHttpEngine engine = new EventLoopHttpEngine();
                engine.setCamelContext(context);
                m.bind(PlatformHttpConstants.PLATFORM_HTTP_ENGINE_NAME, engine);
            }
            // the pool of the routes' threads steps (DistServe, admin calls that wait on nodes or the disk); as many
            // threads as the Vert.x worker pool had, since a DistServe stream holds one to its end
            m.bind("proxyBlocking", context.getExecutorServiceManager().newThreadPool(this, "proxy-blocking",
                    new ThreadPoolProfileBuilder("proxy-blocking").poolSize(CamelServers.WORKER_THREADS)
                            .maxPoolSize(CamelServers.WORKER_THREADS).maxQueueSize(-1).allowCoreThreadTimeOut(true)
                            .keepAliveTime(60L).build()));
            NodeStreams streams = new NodeStreams(connect, key, () -> VertxPlatformHttpRouter.lookup(context,
                    VertxPlatformHttpRouter.getRouterNameFromPort(settings.port())).vertx());
            int maxMigrations = (int) number(props, "distserve.proxy.maxMigrations", 2);
            m.bind("forwardHybrid", new ForwardHybrid(client, streams, firstByte, metrics, router, maxMigrations,
                    meters));
            NextAttempt nextAttempt = new NextAttempt(maxMigrations, migrations, meters);
            m.bind("nextAttempt", nextAttempt);
            m.bind("prefill", new PrefillCall(client, prefillTimeout, migrations));
            m.bind("respondFromPrefill", new RespondFromPrefill(client, metrics));
            m.bind("connectPair", new ConnectPair(pairs));
            m.bind("decode", new DecodeCall(client, pairs, firstByte, metrics, nextAttempt));
            m.bind("releaseCall", new ReleaseCall(client, control, migrations, background));
            m.bind("proxyAdmin", new ProxyAdmin(registry, pairs, client, migrations, control, background));
            m.bind("prometheusScrape", new PrometheusScrape(meters));
        }

        @Override
        public void afterStart(BaseMainSupport mainSupport) {
            health.start();
            if (prefixPoller != null) {
                prefixPoller.start();
            }
            if (settings.consul() != null) {
                discoverThroughConsul(mainSupport.getCamelContext());
            }
            LOG.info("proxy serving on http://{}:{} ({} serving, {} routing, {} migration); node table {}{}",
                    settings.host(), settings.port(), settings.servingStrategy(), settings.routingStrategy(),
                    settings.migrationProtocol(), settings.nodeTable(), settings.consul() == null ? ""
                            : "; engines also from Consul " + settings.consul().baseUrl() + " (service '"
                            + settings.consul().service() + "')");
        }

        /**
         * {@code --consul-url}: passing instances of the service join the table (and leave it) as Consul says; the
         * pairs the engines report connected enter the pool at once, without a warmup.
         */
        private void discoverThroughConsul(org.apache.camel.CamelContext context) {
            ConsulSettings consul = ConsulProperties.read(context.getPropertiesComponent());
            consulApi = ConsulApi.create(context, settings.consul(), consul.requestTimeout(), consul.blockingWait());
            discovery = new ConsulDiscovery(consulApi, registry, consul.blockingWait(), new ConsulDiscovery.Listener() {
                @Override
                public void added(List<String> urls) {
                    background.execute(() -> {
                        try {
                            learner.learn();
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        } catch (RuntimeException e) {
                            LOG.warn("could not learn connected pairs: {}", e.toString());
                        }
                    });
                }

                @Override
                public void removed(String url) {
                    pairs.forget(url);
                }
            });
            discovery.start();
        }

        @Override
        public void afterStop(BaseMainSupport mainSupport) {
            if (discovery != null) {
                discovery.close();
            }
            if (consulApi != null) {
                consulApi.close();
            }
            if (health != null) {
                health.close();
            }
            if (prefixPoller != null) {
                prefixPoller.close();
            }
            if (tokenizers != null) {
                tokenizers.close();
            }
            if (background != null) {
                background.shutdownNow();
            }
        }

        private double decimal(PropertiesComponent props, String key, double dflt) {
            return props.resolveProperty(key).map(Double::parseDouble).orElse(dflt);
        }

        private long number(PropertiesComponent props, String key, long dflt) {
            return props.resolveProperty(key).map(Long::parseLong).orElse(dflt);
        }
    }
}
