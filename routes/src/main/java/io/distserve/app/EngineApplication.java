package io.distserve.app;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.LoadedModel;
import io.distserve.processors.cluster.AdvertisedAddress;
import io.distserve.processors.cluster.ProxyRegistration;
import io.distserve.registry.consul.ConsulApi;
import io.distserve.registry.consul.ConsulRegistration;
import io.distserve.registry.consul.ConsulSettings;
import io.distserve.processors.disagg.ControlEndpoints;
import io.distserve.processors.disagg.KvPool;
import io.distserve.processors.disagg.MigrationService;
import io.distserve.processors.disagg.MigrationTransports;
import io.distserve.processors.disagg.PullKv;
import io.distserve.processors.metrics.LeaseGauges;
import io.distserve.processors.metrics.MigrationMetrics;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportRegistry;
import io.distserve.processors.engine.EngineManagement;
import io.distserve.processors.engine.EngineNode;
import io.distserve.processors.engine.GenerateResponse;
import io.distserve.processors.engine.HealthCheck;
import io.distserve.processors.engine.ListModels;
import io.distserve.processors.engine.PrepareGeneration;
import io.distserve.processors.engine.StreamResponse;
import io.distserve.processors.http.ApiKeyCheck;
import io.distserve.processors.http.ErrorResponse;
import io.distserve.processors.http.LenientJsonBody;
import io.distserve.processors.http.UnmatchedRequests;
import io.distserve.processors.metrics.EngineGauges;
import io.distserve.processors.metrics.PrometheusScrape;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.Ingest;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.processors.openai.RequestKind;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.management.ObjectName;
import org.apache.camel.CamelContext;
import org.apache.camel.component.micrometer.MicrometerConstants;
import org.apache.camel.main.BaseMainSupport;
import org.apache.camel.main.Main;
import org.apache.camel.main.MainListenerSupport;
import org.apache.camel.spi.ManagementAgent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code serve api_server}: loads the model, binds the processors that the YAML routes name, and runs Camel Main
 * until the process is told to stop. Shutdown drains: new requests get 503 while in-flight ones finish (up to
 * {@code distserve.engine.drainTimeoutSeconds}), then what remains is aborted and everything is freed.
 */
public final class EngineApplication {

    private static final Logger LOG = LoggerFactory.getLogger(EngineApplication.class);

    private final EngineServerSettings settings;
    private volatile Main main;
    private volatile EngineNode node;

    public EngineApplication(EngineServerSettings settings) {
        this.settings = settings;
    }

    /** Runs until stopped; returns the exit code. Model loading failures throw before anything listens. */
    public int run() throws Exception {
        LoadedModel model = LoadedModel.load(settings.modelDir(), settings.engine());
        String name = settings.modelName() != null ? settings.modelName() : model.name();
        EngineNode engineNode = new EngineNode(name, settings.role(), model.tokenizer(), model.engine(),
                model.config().maxPositions(), model.config().vocabSize(), Clock.systemUTC(), settings.leaseTtl());
        this.node = engineNode;

        ObjectMapper json = new ObjectMapper();
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        // The KV pool as the transfer layer sees it (host chunks, or the CUDA pool on the engine's context), served
        // over every transport --migration-backend allows.
        KvPool kvPool = KvPool.of(model.backend());
        MigrationService migration;
        try {
            migration = new MigrationService(engineNode.engineId(), model.backend().kvLayout(),
                    model.engine().blockManager(), kvPool.region(),
                    MigrationTransports.offered(TransportRegistry.discover(), kvPool.region(),
                            settings.migrationBackend(), TransportOptions.defaults()
                                    .withBind(settings.host(), settings.migrationPort())
                                    .withAdvertisedHost(AdvertisedAddress.host(settings.host(), settings.towards()))),
                    model.config().vocabSize(), model.config().maxPositions(), MigrationService.Settings.defaults(),
                    settings.apiKeys().isEmpty() ? null : settings.apiKeys().get(0), json,
                    new MigrationMetrics(registry));
        } catch (RuntimeException | java.io.IOException e) {
            kvPool.close();
            model.close();
            throw e;
        }
        OpenAiResponses responses = new OpenAiResponses(json);
        RequestMetrics metrics = new RequestMetrics(registry);
        EngineGauges.register(registry, engineNode);
        LeaseGauges.register(registry, engineNode.leases());

        Main m = CamelServers.newMain(EngineApplication.class, settings.host(), settings.port(),
                CamelServers.routes(settings.routes(), settings.extraRoutes(), EngineServerSettings.DEFAULT_ROUTES),
                settings.propertiesFile());
        EngineBeans.bind(m::bind, engineNode, migration, settings.apiKeys(), json, registry, metrics);
        m.addMainListener(new Lifecycle(model, kvPool, migration, json, responses));
        this.main = m;
        m.run();
        return m.getExitCode();
    }

    /** Stops a running server from another thread (tests, JMX). */
    public void stop() {
        Main m = main;
        if (m != null) {
            m.completed();
        }
    }

    public EngineNode node() {
        return node;
    }

    /** Start: JMX bean, serving, proxy registration. Stop: drain, deregister, free. */
    private final class Lifecycle extends MainListenerSupport {
        private final LoadedModel model;
        private final KvPool kvPool;
        private final MigrationService migration;
        private final ObjectMapper json;
        private final OpenAiResponses responses;
        private ProxyRegistration registration;
        private ConsulApi consulApi;
        private ConsulRegistration consulRegistration;

        Lifecycle(LoadedModel model, KvPool kvPool, MigrationService migration, ObjectMapper json,
                  OpenAiResponses responses) {
            this.model = model;
            this.kvPool = kvPool;
            this.migration = migration;
            this.json = json;
            this.responses = responses;
        }

        @Override
        public void afterStart(BaseMainSupport mainSupport) {
            CamelContext context = mainSupport.getCamelContext();
            registerMBean(context);
            UnmatchedRequests.install(context, settings.port(), responses);
            if (!LenientJsonBody.install(context, settings.port())) {
                LOG.warn("no platform-http router on port {}: form-encoded JSON bodies will be refused",
                        settings.port());
            }
            node.markServing();
            String host = AdvertisedAddress.host(settings.host(), settings.towards());
            int port = settings.port();
            String url = "http://" + host + ":" + port;
            LOG.info("engine {} serving {} as {} on {} (KV: {} blocks of {} tokens)", node.engineId(),
                    node.modelName(), node.role(), url, model.backend().kvLayout().numBlocks(),
                    model.backend().kvLayout().blockSize());
            if (settings.proxyUrl() != null) {
                int interval = context.getPropertiesComponent()
                        .resolveProperty("distserve.engine.proxyRegistrationIntervalSeconds").map(Integer::parseInt)
                        .orElse(15);
                registration = new ProxyRegistration(settings.proxyUrl(), url, node.role().name(),
                        List.of(node.modelName()), settings.apiKeys().isEmpty() ? null : settings.apiKeys().get(0),
                        Duration.ofSeconds(interval), json);
                registration.start();
            }
            if (settings.consul() != null) {
                registerWithConsul(context, host, port);
            }
        }

        /** {@code --consul-url}: a service instance with a health check of /health, kept registered. */
        private void registerWithConsul(CamelContext context, String host, int port) {
            ConsulSettings consul = ConsulProperties.read(context.getPropertiesComponent());
            consulApi = ConsulApi.create(context, settings.consul(), consul.requestTimeout(), consul.blockingWait());
            consulRegistration = new ConsulRegistration(consulApi, new ConsulRegistration.Engine(host, port,
                    node.role(), List.of(node.modelName()), model.backend().kvLayout().blockSize(),
                    migration.transportNames(), node.engineId()), consul);
            consulRegistration.start();
        }

        private void registerMBean(CamelContext context) {
            ManagementAgent agent = context.getManagementStrategy().getManagementAgent();
            if (agent == null) {
                return;
            }
            try {
                // the context key exactly as Camel writes it in its own names (unquoted when it can be), so that
                // context=<name>,type=services,* finds this bean beside Camel's
                String contextKey = context.getManagementStrategy().getManagementObjectNameStrategy()
                        .getObjectNameForCamelContext(context).getKeyProperty("context");
                ObjectName name = new ObjectName(agent.getMBeanObjectDomainName() + ":context=" + contextKey
                        + ",type=services,name=DistServeEngine");
                agent.register(new EngineManagement(node), name);
            } catch (Exception e) {
                LOG.warn("engine MBean not registered: {}", e.toString());
            }
        }

        @Override
        public void beforeStop(BaseMainSupport mainSupport) {
            node.markDraining();
            if (registration != null) {
                registration.close();
            }
            if (consulRegistration != null) {
                // out of Consul first, so that proxies stop routing here while in-flight requests drain
                consulRegistration.close();
            }
            int seconds = mainSupport.getCamelContext().getPropertiesComponent()
                    .resolveProperty("distserve.engine.drainTimeoutSeconds").map(Integer::parseInt).orElse(30);
            try {
                node.engine().drain().get(seconds, TimeUnit.SECONDS);
            } catch (TimeoutException e) {
                LOG.warn("requests still running after {} s of draining; aborting them", seconds);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (Exception e) {
                LOG.warn("drain failed: {}", e.toString());
            }
        }

        @Override
        public void afterStop(BaseMainSupport mainSupport) {
            node.markDraining();
            if (consulApi != null) {
                consulApi.close();
            }
            migration.close();
            kvPool.close();
            node.leases().close();
            model.close();
            LOG.info("engine {} stopped", node.engineId());
        }
    }
}
