package io.distserve.processors.http;

import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.openai.OpenAiResponses;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The route's error handler: turns the caught exception into an HTTP status and an OpenAI error body. Client
 * errors are logged at DEBUG; anything unexpected is a 500 whose stack trace goes to the log (never to the client).
 */
public final class ErrorResponse implements Processor {

    private static final Logger LOG = LoggerFactory.getLogger(ErrorResponse.class);

    private final OpenAiResponses responses;
    private final RequestMetrics metrics;

    public ErrorResponse(OpenAiResponses responses, RequestMetrics metrics) {
        this.responses = responses;
        this.metrics = metrics;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        Throwable caught = exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class);
        for (Throwable t = caught; t != null; t = t.getCause()) {
            if (t instanceof ClientGoneException) {
                // nobody to answer: the work for it has stopped; count it as what it is
                LOG.debug("{}: {}", exchange.getFromRouteId(), t.getMessage());
                metrics.requestEnded(exchange.getFromRouteId(), RequestMetrics.CLIENT_CLOSED);
                ClientDisconnect.endQuietly(exchange);
                return;
            }
        }
        OpenAiException error = toOpenAi(caught);
        String route = exchange.getFromRouteId();
        if (error.status() >= 500) {
            LOG.error("{} failed: {}", route, caught == null ? error.getMessage() : caught.toString(), caught);
        } else {
            LOG.debug("{} rejected with {}: {}", route, error.status(), error.getMessage());
        }
        metrics.requestEnded(route, error.status());
        SseResponse stream = exchange.getProperty("distserveSse", SseResponse.class);
        if (stream != null) {
            // the client's stream is open (its 200 is sent): the error goes in it as an event, then [DONE]
            stream.send(responses.json().writeValueAsString(responses.error(error)));
            stream.end();
            return;
        }
        Replies.json(exchange, error.status(), responses.json().writeValueAsString(responses.error(error)));
    }

    public static OpenAiException toOpenAi(Throwable caught) {
        for (Throwable t = caught; t != null; t = t.getCause()) {
            if (t instanceof OpenAiException e) {
                return e;
            }
            if (t instanceof io.distserve.processors.proxy.NodeFailure f) {
                return new OpenAiException(503, "service_unavailable", null, "node_failed",
                        "No node could serve the request: " + f.getMessage());
            }
        }
        return OpenAiException.internal("Internal error: " + (caught == null ? "unknown" : caught.getClass().getSimpleName())
                + "; see the server log.");
    }
}
