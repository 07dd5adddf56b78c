package io.distserve.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.EngineConfig;
import io.distserve.engine.EngineOptions;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.processors.engine.EngineNode;
import io.distserve.processors.disagg.MigrationService;
import io.distserve.kv.transfer.TransportOptions;
import io.distserve.kv.transfer.TransportRegistry;
import io.distserve.processors.engine.GenerateResponse;
import io.distserve.processors.engine.HealthCheck;
import io.distserve.processors.engine.ListModels;
import io.distserve.processors.engine.PrepareGeneration;
import io.distserve.processors.engine.PreparedGeneration;
import io.distserve.processors.engine.StreamResponse;
import io.distserve.processors.http.ApiKeyCheck;
import io.distserve.processors.http.ErrorResponse;
import io.distserve.processors.metrics.PrometheusScrape;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.InferenceRequest;
import io.distserve.processors.openai.Ingest;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.processors.openai.RequestKind;
import io.distserve.registry.NodeRole;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.camel.Exchange;
import org.apache.camel.builder.AdviceWith;
import org.apache.camel.builder.NotifyBuilder;
import org.apache.camel.component.mock.MockEndpoint;
import org.apache.camel.main.MainConfigurationProperties;
import org.apache.camel.model.RouteDefinition;
import org.apache.camel.model.ModelCamelContext;
import org.apache.camel.spi.Registry;
import org.apache.camel.test.junit5.TestExecutionConfiguration;
import org.apache.camel.test.main.junit5.CamelMainTestSupport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The YAML routes under Camel Main's test support, without HTTP on the completions route: AdviceWith swaps its
 * platform-http consumer for {@code direct:completions} and puts mocks between the steps, so the test sees the
 * message after ingest, after prepare and after the response step. NotifyBuilder waits for exchanges to complete.
 */
class EngineRoutesTest extends CamelMainTestSupport {

    @TempDir
    static Path dir;

    static LoadedModel model;
    static EngineNode node;
    static MigrationService migration;
    static final ObjectMapper JSON = new ObjectMapper();
    static int port;

    @BeforeAll
    static void loadModel() throws Exception {
        Path folder = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 7, null).withThreads(1).writeTo(folder);
        model = LoadedModel.load(folder, new EngineOptions("cpu", 64, 0.5, 64, 1, EngineConfig.defaults()));
        node = new EngineNode("tiny", NodeRole.Hybrid, model.tokenizer(), model.engine(),
                model.config().maxPositions(), model.config().vocabSize(), Clock.systemUTC(),
                java.time.Duration.ofSeconds(60));
        node.markServing();
        port = TestEngineServer.freePort();
    }

    @AfterAll
    static void closeModel() {
        if (migration != null) {
            migration.close();
        }
        if (model != null) {
            model.close();
        }
    }

    @Override
    public void configureTest(TestExecutionConfiguration configuration) {
        super.configureTest(configuration);
        configuration.withUseAdviceWith(true);
    }

    @Override
    protected String getPropertyPlaceholderLocations() {
        return "classpath:engine-routes-test.properties;optional=true"; // not the server's defaults
    }

    @Override
    protected void configure(MainConfigurationProperties configuration) {
        configuration.withRoutesIncludePattern(EngineServerSettings.DEFAULT_ROUTES);
        // the routes not advised below still listen on platform-http
        configuration.httpServer().withEnabled(true).withHost("127.0.0.1").withPort(port);
    }

    @Override
    protected void bindToRegistry(Registry registry) throws Exception {
        PrometheusMeterRegistry prometheus = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        migration = new MigrationService(node.engineId(), model.backend().kvLayout(), model.engine().blockManager(),
                io.distserve.processors.disagg.KvPool.of(model.backend()).region(),
                List.of(TransportRegistry.discover().create("tcp", TransportOptions.defaults())),
                model.config().vocabSize(), model.config().maxPositions(), MigrationService.Settings.defaults(), null,
                JSON, new io.distserve.processors.metrics.MigrationMetrics(prometheus));
        EngineBeans.bind(registry::bind, node, migration, List.of(), JSON, prometheus, new RequestMetrics(prometheus));
    }

    private void adviseCompletions(boolean failInPrepare) throws Exception {
        AdviceWith.adviceWith(context, "completions", a -> {
            a.replaceFromWith("direct:completions");
            a.weaveByToString("process\\[ref:ingestCompletion\\]").after().to("mock:ingested");
            if (failInPrepare) {
                a.weaveByToString("process\\[ref:prepareGeneration\\]").replace()
                        .throwException(new IllegalStateException("injected by AdviceWith"));
            } else {
                a.weaveByToString("process\\[ref:prepareGeneration\\]").after().to("mock:prepared");
            }
            a.weaveByToString("process\\[ref:generateResponse\\]").after().to("mock:responded");
        });
        context.start();
    }

    @Test
    void theYamlRoutesLoad() throws Exception {
        context.start();
        List<RouteDefinition> routes = ((ModelCamelContext) context).getRouteDefinitions();
        assertThat(routes).extracting(RouteDefinition::getRouteId)
                .contains("completions", "chat-completions", "models", "health", "metrics");
        assertThat(context.getRoute("completions").getEndpoint().getEndpointUri())
                .startsWith("platform-http:///v1/completions");
        assertThat(context.getRoute("chat-completions").getEndpoint().getEndpointUri())
                .startsWith("platform-http:///v1/chat/completions");
        assertThat(context.getRouteController().getRouteStatus("health").isStarted()).isTrue();
    }

    @Test
    void completionsRouteRunsIngestThenPrepareThenRespond() throws Exception {
        adviseCompletions(false);
        MockEndpoint ingested = getMockEndpoint("mock:ingested");
        MockEndpoint prepared = getMockEndpoint("mock:prepared");
        MockEndpoint responded = getMockEndpoint("mock:responded");
        ingested.expectedMessageCount(3);
        prepared.expectedMessageCount(3);
        responded.expectedMessageCount(3);
        NotifyBuilder done = new NotifyBuilder(context).fromRoute("completions").whenCompleted(3).create();

        for (int i = 0; i < 3; i++) {
            template.asyncSendBody("direct:completions",
                    "{\"model\":\"tiny\",\"prompt\":\"route test " + i + "\",\"max_tokens\":4,\"temperature\":0,"
                            + "\"ignore_eos\":true}");
        }
        assertThat(done.matches(30, TimeUnit.SECONDS)).as("3 exchanges completed").isTrue();
        MockEndpoint.assertIsSatisfied(context);

        assertThat(ingested.getExchanges()).allSatisfy(e -> {
            assertThat(e.getIn().getBody()).isInstanceOf(InferenceRequest.class);
            assertThat(e.getProperty(Ingest.STREAM, Boolean.class)).isFalse();
        });
        assertThat(prepared.getExchanges()).allSatisfy(e -> {
            PreparedGeneration p = e.getIn().getBody(PreparedGeneration.class);
            assertThat(p.id()).startsWith("cmpl-");
            assertThat(p.generation().params().maxTokens()).isEqualTo(4);
        });
        for (Exchange e : responded.getExchanges()) {
            assertThat(e.getMessage().getHeader(Exchange.HTTP_RESPONSE_CODE)).isEqualTo(200);
            JsonNode body = JSON.readTree(e.getMessage().getBody(String.class));
            assertThat(body.path("usage").path("completion_tokens").asInt()).isEqualTo(4);
        }
    }

    @Test
    void badInputStopsAtIngest() throws Exception {
        adviseCompletions(false);
        getMockEndpoint("mock:ingested").expectedMessageCount(0);
        getMockEndpoint("mock:prepared").expectedMessageCount(0);
        getMockEndpoint("mock:responded").expectedMessageCount(0);
        Exchange out = template.request("direct:completions",
                e -> e.getIn().setBody("{\"model\":\"tiny\",\"prompt\":\"x\",\"top_p\":2}"));
        assertThat(out.getMessage().getHeader(Exchange.HTTP_RESPONSE_CODE)).isEqualTo(400);
        assertThat(JSON.readTree(out.getMessage().getBody(String.class)).path("error").path("param").asText())
                .isEqualTo("top_p");
        MockEndpoint.assertIsSatisfied(context);
    }

    @Test
    void anUnexpectedFailureIsA500ErrorBody() throws Exception {
        adviseCompletions(true);
        getMockEndpoint("mock:responded").expectedMessageCount(0);
        try (LogCapture log = LogCapture.attach()) {
            Exchange out = template.request("direct:completions",
                    e -> e.getIn().setBody("{\"model\":\"tiny\",\"prompt\":\"x\"}"));
            assertThat(out.getMessage().getHeader(Exchange.HTTP_RESPONSE_CODE)).isEqualTo(500);
            JsonNode error = JSON.readTree(out.getMessage().getBody(String.class)).path("error");
            assertThat(error.path("type").asText()).isEqualTo("internal_error");
            assertThat(error.path("message").asText()).doesNotContain("injected");
            assertThat(out.isFailed()).as("handled by the route's error handler").isFalse();
            assertThat(log.events()).anySatisfy(e -> assertThat(e.getThrown())
                    .isInstanceOf(IllegalStateException.class).hasMessage("injected by AdviceWith"));
        }
        MockEndpoint.assertIsSatisfied(context);
    }
}
