package io.distserve.processors.routing;

import io.distserve.engine.kv.PrefixHasher;
import io.distserve.engine.tokenizer.ModelTokenizer;
import io.distserve.processors.openai.InferenceRequest;
import io.distserve.processors.openai.PromptTokens;
import java.util.Optional;
import java.util.function.Function;

/**
 * A request's prompt as a router that weighs prefix-cache overlap sees it: its token ids (computed once, when a
 * strategy first asks) and their block keys per key function. Belongs to one request (its ProxyCall): used by one
 * thread at a time.
 */
public final class PromptPrefix {

    private final InferenceRequest request;
    private boolean tokenized;
    private int[] tokens;
    private PrefixHasher keyedWith;
    private long[] keys;

    public PromptPrefix(InferenceRequest request) {
        this.request = request;
    }

    public String model() {
        return request.model();
    }

    /**
     * The prompt's token ids as the model's engines compute them, or null when the router has no tokenizer for the
     * model yet or the prompt does not tokenize (the engine will answer that with its 400).
     */
    public int[] tokens(Function<String, Optional<ModelTokenizer>> tokenizers) {
        if (!tokenized) {
            Optional<ModelTokenizer> tokenizer = tokenizers.apply(request.model());
            if (tokenizer.isEmpty()) {
                return null; // not yet: a later choice (a retry, the decode side) may have it
            }
            tokenized = true;
            try {
                tokens = PromptTokens.of(request, tokenizer.get(), Integer.MAX_VALUE);
            } catch (RuntimeException e) {
                tokens = null;
            }
        }
        return tokens;
    }

    /** The keys of the prompt's full blocks under {@code hasher}; the tokens must be known. */
    public long[] keys(PrefixHasher hasher) {
        if (tokens == null) {
            return new long[0];
        }
        if (!hasher.equals(keyedWith)) {
            keys = hasher.keys(tokens);
            keyedWith = hasher;
        }
        return keys;
    }
}
