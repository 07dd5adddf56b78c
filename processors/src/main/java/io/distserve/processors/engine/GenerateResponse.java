package io.distserve.processors.engine;

import io.distserve.processors.http.Replies;
import io.distserve.engine.FinishEvent;
import io.distserve.processors.http.ClientDisconnect;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.openai.OpenAiResponses;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Non-streamed generation: runs the prepared request to the end and answers with the whole OpenAI response. A
 * client that disconnects first aborts the sequence, which frees its KV blocks.
 */
public final class GenerateResponse implements Processor {

    private final EngineNode node;
    private final OpenAiResponses responses;
    private final RequestMetrics metrics;

    public GenerateResponse(EngineNode node, OpenAiResponses responses, RequestMetrics metrics) {
        this.node = node;
        this.responses = responses;
        this.metrics = metrics;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        PreparedGeneration p = exchange.getIn().getBody(PreparedGeneration.class);
        Submission s = Submission.submit(node, p);
        metrics.requestStarted();
        try {
            AtomicBoolean clientGone = new AtomicBoolean();
            ClientDisconnect.onClose(exchange, () -> {
                clientGone.set(true);
                s.handle().abort();
            });
            FinishEvent f = null;
            while (f == null) {
                Submission.Event e = s.next(1000);
                if (e instanceof Submission.Finished done) {
                    f = done.event();
                } else if (e instanceof Submission.Failed failed) {
                    throw OpenAiException.internal("Generation failed: " + failed.error().getMessage());
                }
            }
            metrics.generationFinished(f);
            RequestLog.finished(node, p, f, false);
            String body = responses.json().writeValueAsString(responses.response(p.request().kind(), p.id(),
                    p.createdEpochSeconds(), node.modelName(), f.text(), f.reason().openAiName(), f.promptTokens(),
                    f.completionTokens()));
            Replies.json(exchange, 200, body);
            metrics.requestEnded(exchange.getFromRouteId(), clientGone.get() ? RequestMetrics.CLIENT_CLOSED : 200);
        } catch (InterruptedException e) {
            s.handle().abort();
            Thread.currentThread().interrupt();
            throw OpenAiException.unavailable("The server is shutting down.");
        } finally {
            metrics.requestFinished();
        }
    }
}
