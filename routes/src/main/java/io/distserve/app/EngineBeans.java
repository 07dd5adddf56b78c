package io.distserve.app;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.disagg.ControlEndpoints;
import io.distserve.processors.disagg.MigrationService;
import io.distserve.processors.disagg.PullKv;
import io.distserve.processors.engine.EngineNode;
import io.distserve.processors.engine.GenerateResponse;
import io.distserve.processors.engine.HealthCheck;
import io.distserve.processors.engine.ListModels;
import io.distserve.processors.engine.PrepareGeneration;
import io.distserve.processors.engine.StreamResponse;
import io.distserve.processors.http.ApiKeyCheck;
import io.distserve.processors.http.ErrorResponse;
import io.distserve.processors.metrics.PrometheusScrape;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.Ingest;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.processors.openai.RequestKind;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.util.List;
import java.util.function.BiConsumer;
import org.apache.camel.component.micrometer.MicrometerConstants;

/**
 * The beans that engine.camel.yaml names, bound by those names: one place for the application and its route tests.
 */
public final class EngineBeans {

    private EngineBeans() {
    }

    /**
     * @param bind where to bind (Camel Main's {@code bind}, or a registry's)
     */
    public static void bind(BiConsumer<String, Object> bind, EngineNode node, MigrationService migration,
                            List<String> apiKeys, ObjectMapper json, PrometheusMeterRegistry prometheus,
                            RequestMetrics metrics) {
        OpenAiResponses responses = new OpenAiResponses(json);
        OpenAiRequestParser parser = new OpenAiRequestParser(json);
        bind.accept(MicrometerConstants.METRICS_REGISTRY_NAME, prometheus);
        bind.accept("apiKeyCheck", new ApiKeyCheck(apiKeys));
        bind.accept("errorResponse", new ErrorResponse(responses, metrics));
        bind.accept("ingestCompletion", new Ingest(RequestKind.COMPLETION, parser));
        bind.accept("ingestChat", new Ingest(RequestKind.CHAT, parser));
        bind.accept("prepareGeneration", new PrepareGeneration(node));
        bind.accept("pullKv", new PullKv(migration));
        bind.accept("generateResponse", new GenerateResponse(node, responses, metrics));
        bind.accept("streamResponse", new StreamResponse(node, responses, metrics));
        bind.accept("listModels", new ListModels(node, responses));
        bind.accept("healthCheck", new HealthCheck(node));
        bind.accept("prometheusScrape", new PrometheusScrape(prometheus));
        bind.accept("distserveControl", new ControlEndpoints(node, migration, node.leases(), json));
    }
}
