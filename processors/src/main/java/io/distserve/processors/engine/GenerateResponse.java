package io.distserve.processors.engine;

import io.distserve.processors.http.Replies;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
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

    /**
     * What a decode engine needs to take over: beside the OpenAI fields, {@code distserve} names this engine, the
     * session (the id {@code free_cache} takes: the same as the response id), the leased blocks, the first token,
     * the prompt's token ids, and how many of them came from the prefix cache.
     */
    private void prefillHandOff(ObjectNode response, PreparedGeneration p, FinishEvent f) {
        ObjectNode d = response.putObject("distserve");
        d.put("engine_id", node.engineId());
        d.put("session_id", p.id());
        ArrayNode blocks = d.putArray("block_ids");
        var lease = node.leases().get(p.id());
        if (lease != null) {
            for (int b : lease.blocks()) {
                blocks.add(b);
            }
        }
        d.put("first_token_id", f.tokenIds().length > 0 ? f.tokenIds()[0] : -1);
        d.put("cached_tokens", f.cachedTokens());
        // the tokens whose K/V the blocks hold: the prompt, then those of an answer that resumed
        ArrayNode prompt = d.putArray("prompt_token_ids");
        for (int t : p.generation().promptTokens()) {
            prompt.add(t);
        }
        for (int t : p.generation().resumeTokens()) {
            prompt.add(t);
        }
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
            ObjectNode response = responses.response(p.request().kind(), p.id(), p.createdEpochSeconds(),
                    node.modelName(), f.text(), f.reason().openAiName(), f.promptTokens(), f.completionTokens(),
                    p.cachedTokens(f));
            if (p.request().returnTokenIds()) {
                var choice = (com.fasterxml.jackson.databind.node.ObjectNode) response.path("choices").get(0);
                var ids = choice.putArray("token_ids");
                for (int t : f.tokenIds()) {
                    ids.add(t);
                }
                var prompt = choice.putArray("prompt_token_ids");
                for (int t : p.generation().promptTokens()) {
                    prompt.add(t);
                }
            }
            if (p.mode() == PreparedGeneration.Mode.PREFILL) {
                if (clientGone.get()) {
                    // the prompt finished in the step the abort came too late for: nobody will take this lease
                    node.leases().free(p.id());
                    metrics.requestEnded(exchange.getFromRouteId(), RequestMetrics.CLIENT_CLOSED);
                    return;
                }
                prefillHandOff(response, p, f);
            }
            String body = responses.json().writeValueAsString(response);
            Replies.json(exchange, 200, body);
            if (p.mode() == PreparedGeneration.Mode.PREFILL && clientGone.get()) {
                // closed while the answer was written: a proxy that read it keeps its connection open, so the
                // answer was not taken; the lease goes now, not at its expiry
                node.leases().free(p.id());
            }
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
