package io.distserve.processors.engine;

import io.distserve.engine.EngineStats;
import io.distserve.engine.GenerationRequest;
import io.distserve.engine.LlmEngine;
import io.distserve.engine.tokenizer.ModelTokenizer;
import io.distserve.processors.disagg.MigrationRequest;
import io.distserve.processors.disagg.PrefillLeases;
import io.distserve.registry.NodeRole;
import io.distserve.processors.openai.InferenceRequest;
import io.distserve.processors.openai.OpenAiException;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.PromptTokens;
import com.fasterxml.jackson.databind.JsonNode;
import java.time.Clock;
import java.util.Arrays;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One served model on this node: its name, tokenizer and running engine, and the node's serving state. Turns a
 * validated OpenAI request into an engine request (tokenization, chat template, context-length checks).
 */
public final class EngineNode implements AutoCloseable {

    /** Serving state, as /health reports it. */
    public enum State { LOADING, SERVING, DRAINING, STOPPED }

    private final String engineId;
    private final String modelName;
    private final NodeRole role;
    private final ModelTokenizer tokenizer;
    private final LlmEngine engine;
    private final int contextLength;
    private final int vocabSize;
    private final Clock clock;
    private final PrefillLeases leases;
    private final AtomicReference<State> state = new AtomicReference<>(State.LOADING);

    public EngineNode(String modelName, NodeRole role, ModelTokenizer tokenizer, LlmEngine engine, int contextLength,
                      int vocabSize, Clock clock, java.time.Duration leaseTtl) {
        this.engineId = "engine-" + UUID.randomUUID();
        this.modelName = modelName;
        this.role = role;
        this.tokenizer = tokenizer;
        this.engine = engine;
        this.contextLength = contextLength;
        this.vocabSize = vocabSize;
        this.clock = clock;
        this.leases = new PrefillLeases(engine.blockManager(), leaseTtl);
    }

    /** The KV blocks this (Prefill) engine holds for decode engines. */
    public PrefillLeases leases() {
        return leases;
    }

    public String engineId() {
        return engineId;
    }

    public String modelName() {
        return modelName;
    }

    public NodeRole role() {
        return role;
    }

    public LlmEngine engine() {
        return engine;
    }

    public ModelTokenizer tokenizer() {
        return tokenizer;
    }

    public int contextLength() {
        return contextLength;
    }

    public State state() {
        return state.get();
    }

    public void markServing() {
        state.compareAndSet(State.LOADING, State.SERVING);
    }

    /** Stops accepting new requests; in-flight ones go on. */
    public void markDraining() {
        state.updateAndGet(s -> s == State.STOPPED ? s : State.DRAINING);
    }

    public EngineStats stats() {
        return engine.stats();
    }

    /** Rejects work unless serving: 503 while loading or draining. */
    public void requireServing() {
        State s = state.get();
        if (s != State.SERVING) {
            throw OpenAiException.unavailable("The engine is " + s.name().toLowerCase() + "; try again later.");
        }
    }

    /**
     * Tokenizes the prompt (through the chat template for chat), checks the model name and the context length,
     * and resolves max_tokens.
     */
    public PreparedGeneration prepare(InferenceRequest request) {
        requireServing();
        if (request.model() != null && !request.model().equals(modelName)) {
            throw OpenAiException.modelNotFound(request.model(), "this server serves '" + modelName + "'.");
        }
        int[] prompt = PromptTokens.of(request, tokenizer, vocabSize);
        int[] resume = request.resumeTokenIds();
        for (int t : resume) {
            // the model's vocabulary, not the tokenizer's: an engine can sample an id of the padding (random
            // weights do), and the stream that moved carried it
            if (t >= vocabSize) {
                throw OpenAiException.badRequest("resume_token_ids", "Token id " + t + " is outside the vocabulary.");
            }
        }
        PreparedGeneration.Mode mode = PreparedGeneration.Mode.NORMAL;
        MigrationRequest migration = null;
        JsonNode migrationJson = request.body().get("migration_request");
        if (migrationJson != null && !migrationJson.isNull()) {
            if (role != NodeRole.Decode) {
                throw OpenAiException.badRequest("migration_request", "This engine's role is " + role
                        + "; migration requests go to Decode engines.");
            }
            migration = MigrationRequest.parse(migrationJson);
            // the KV's tokens: the prompt, and the tokens of an answer that resumes (its prefill computed them too)
            int[] kvTokens = Arrays.copyOf(prompt, prompt.length + resume.length);
            System.arraycopy(resume, 0, kvTokens, prompt.length, resume.length);
            if (!Arrays.equals(migration.promptTokenIds(), kvTokens)) {
                throw OpenAiException.badRequest("migration_request.prompt_token_ids", "migration_request."
                        + "prompt_token_ids (" + migration.promptTokenIds().length + " tokens) are not this request's "
                        + "prompt" + (resume.length > 0 ? " and resume_token_ids" : "") + " as this engine tokenizes "
                        + "it (" + kvTokens.length + " tokens): a different model?");
            }
            mode = PreparedGeneration.Mode.MIGRATED;
        } else if (role == NodeRole.Prefill) {
            if (request.stream()) {
                throw OpenAiException.badRequest("stream", "A Prefill engine answers with the first token and a "
                        + "KV lease, not a stream; send stream=false (the proxy does).");
            }
            mode = PreparedGeneration.Mode.PREFILL;
        }
        // a Prefill engine samples one token, after the resumed ones when the answer resumes (they count)
        int max = mode == PreparedGeneration.Mode.PREFILL ? resume.length + 1 : request.sampling().maxTokens();
        if (max == OpenAiRequestParser.UNTIL_CONTEXT_END) {
            max = contextLength - prompt.length;
            if (max < 1) {
                throw contextOverflow(prompt.length, 1);
            }
        } else if ((long) prompt.length + max > contextLength) {
            throw contextOverflow(prompt.length, max);
        }
        String id = request.kind().idPrefix() + UUID.randomUUID().toString().replace("-", "");
        GenerationRequest generation = new GenerationRequest(id, prompt, request.sampling().withMaxTokens(max),
                resume);
        return new PreparedGeneration(request, id, clock.millis() / 1000, generation, mode, migration, null);
    }

    private OpenAiException contextOverflow(int promptTokens, int maxTokens) {
        return OpenAiException.badRequest("max_tokens", "This model's maximum context length is " + contextLength
                + " tokens. However, you requested " + ((long) promptTokens + maxTokens) + " tokens ("
                + promptTokens + " in the prompt, " + maxTokens + " for the completion).");
    }

    @Override
    public void close() {
        state.set(State.STOPPED);
        leases.close();
        engine.close();
        tokenizer.close();
    }
}
