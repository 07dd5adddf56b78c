package io.distserve.processors.engine;

import io.distserve.engine.FinishEvent;
import io.distserve.engine.sched.FinishReason;
import io.distserve.processors.http.ErrorResponse;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.metrics.RequestMetrics;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.openai.OpenAiResponses;
import io.distserve.processors.openai.RequestKind;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Streamed generation: one SSE chunk per token as the engine produces it, a final chunk with the finish reason, an
 * optional usage chunk, then {@code [DONE]}. A failure after the stream has started is an SSE error event followed
 * by {@code [DONE]}. A client that disconnects aborts the sequence, which frees its KV blocks.
 */
public final class StreamResponse implements Processor {

    private static final Logger LOG = LoggerFactory.getLogger(StreamResponse.class);

    private final EngineNode node;
    private final OpenAiResponses responses;
    private final RequestMetrics metrics;

    public StreamResponse(EngineNode node, OpenAiResponses responses, RequestMetrics metrics) {
        this.node = node;
        this.responses = responses;
        this.metrics = metrics;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        PreparedGeneration p = exchange.getIn().getBody(PreparedGeneration.class);
        SseResponse sse = SseResponse.of(exchange);
        // Submit before starting the stream: a full queue is still a plain 429, not an event in a 200 stream.
        Submission s = Submission.submit(node, p);
        metrics.requestStarted();
        try {
            sse.start(() -> s.handle().abort());
            stream(p, s, sse);
        } catch (InterruptedException e) {
            s.handle().abort();
            Thread.currentThread().interrupt();
            sendError(sse, OpenAiException.unavailable("The server is shutting down."));
        } finally {
            sse.end();
            metrics.requestFinished();
            metrics.requestEnded(exchange.getFromRouteId(), sse.clientGone() ? RequestMetrics.CLIENT_CLOSED : 200);
        }
    }

    private void stream(PreparedGeneration p, Submission s, SseResponse sse) throws Exception {
        RequestKind kind = p.request().kind();
        String model = node.modelName();
        boolean first = true;
        while (true) {
            Submission.Event e = s.next(1000);
            if (e == null) {
                if (sse.clientGone()) {
                    s.handle().abort();
                }
                continue;
            }
            if (e instanceof Submission.Token t) {
                String delta = t.event().textDelta();
                boolean ids = p.request().returnTokenIds();
                if ((delta != null && !delta.isEmpty()) || ids) {
                    // with return_token_ids every token is a chunk, its text possibly empty (held back for a
                    // character or a stop string): whoever reads the ids knows exactly what was generated
                    var chunk = responses.chunk(kind, p.id(), p.createdEpochSeconds(), model, delta, first, null);
                    if (ids) {
                        var choice = (com.fasterxml.jackson.databind.node.ObjectNode) chunk.path("choices").get(0);
                        choice.putArray("token_ids").add(t.event().tokenId());
                        if (first) {
                            var prompt = choice.putArray("prompt_token_ids");
                            for (int id : p.generation().promptTokens()) {
                                prompt.add(id);
                            }
                        }
                    }
                    if (!send(sse, chunk)) {
                        s.handle().abort(); // the client is gone: free the sequence now, not at max_tokens
                    }
                    first = false;
                }
            } else if (e instanceof Submission.Finished done) {
                FinishEvent f = done.event();
                metrics.generationFinished(f);
                RequestLog.finished(node, p, f, true);
                if (f.reason() == FinishReason.ABORT) {
                    return; // the client is gone or an operator aborted it: nobody to finish the stream for
                }
                send(sse, responses.chunk(kind, p.id(), p.createdEpochSeconds(), model, first ? "" : null, first,
                        f.reason().openAiName()));
                if (p.request().includeUsage()) {
                    send(sse, responses.usageChunk(kind, p.id(), p.createdEpochSeconds(), model, f.promptTokens(),
                            f.completionTokens(), p.cachedTokens(f)));
                }
                return;
            } else if (e instanceof Submission.Failed failed) {
                LOG.error("{} failed mid-stream", p.id(), failed.error());
                sendError(sse, ErrorResponse.toOpenAi(failed.error()).status() < 500
                        ? ErrorResponse.toOpenAi(failed.error())
                        : OpenAiException.internal("Generation failed: " + failed.error().getMessage()));
                return;
            }
        }
    }

    private boolean send(SseResponse sse, Object chunk) throws Exception {
        return sse.send(responses.json().writeValueAsString(chunk));
    }

    private void sendError(SseResponse sse, OpenAiException error) {
        try {
            send(sse, responses.error(error));
        } catch (Exception e) {
            LOG.debug("could not send the SSE error event", e);
        }
    }
}
