package io.distserve.processors.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.openai.OpenAiResponses;
import io.vertx.core.Handler;
import io.vertx.ext.web.RoutingContext;
import org.apache.camel.CamelContext;
import org.apache.camel.component.platform.http.HttpEndpointModel;
import org.apache.camel.component.platform.http.PlatformHttpComponent;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpRouter;

/**
 * The last handler of the platform-http router: a request no Camel route took gets an OpenAI error body instead of
 * Vert.x's HTML page: 405 (with Allow) when a route serves the path with other methods, 404 otherwise.
 */
public final class UnmatchedRequests implements Handler<RoutingContext> {

    private final CamelContext context;
    private final OpenAiResponses responses;

    private UnmatchedRequests(CamelContext context, OpenAiResponses responses) {
        this.context = context;
        this.responses = responses;
    }

    /** Puts the handler behind every route of the server on {@code port}; false when there is no router. */
    public static boolean install(CamelContext context, int port, OpenAiResponses responses) {
        VertxPlatformHttpRouter router = VertxPlatformHttpRouter.lookup(context,
                VertxPlatformHttpRouter.getRouterNameFromPort(port));
        if (router == null) {
            return false;
        }
        router.route().order(Integer.MAX_VALUE).handler(new UnmatchedRequests(context, responses));
        return true;
    }

    @Override
    public void handle(RoutingContext ctx) {
        String path = ctx.request().path();
        String allowed = null;
        PlatformHttpComponent http = context.getComponent("platform-http", PlatformHttpComponent.class);
        if (http != null) {
            for (HttpEndpointModel endpoint : http.getHttpEndpoints()) {
                if (endpoint.getUri().equals(path)) {
                    allowed = endpoint.getVerbs();
                }
            }
        }
        OpenAiException error = allowed == null
                ? OpenAiException.notFound("No such endpoint: " + path + ".")
                : new OpenAiException(405, "invalid_request_error", null, "method_not_allowed",
                        "Method " + ctx.request().method() + " is not allowed on " + path
                                + (allowed.isEmpty() ? "." : "; use " + allowed + "."));
        String body;
        try {
            body = responses.json().writeValueAsString(responses.error(error));
        } catch (JsonProcessingException e) {
            body = "{\"error\":{\"message\":\"" + error.status() + "\"}}";
        }
        var response = ctx.response().setStatusCode(error.status()).putHeader("Content-Type", "application/json");
        if (allowed != null && !allowed.isEmpty()) {
            response.putHeader("Allow", allowed);
        }
        response.end(body);
    }
}
