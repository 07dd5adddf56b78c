package io.distserve.processors.engine;

import io.distserve.engine.GenerationRequest;
import io.distserve.processors.disagg.MigratedKv;
import io.distserve.processors.disagg.MigrationRequest;
import io.distserve.processors.openai.InferenceRequest;

/**
 * A request ready for the engine: the validated OpenAI request, its id and creation time (as the client will see
 * them), the engine request with the prompt tokenized and max_tokens resolved against the context, and how the
 * engine runs it.
 *
 * @param migration the decode side's migration request (mode MIGRATED), else null
 * @param migrated  the blocks pulled for it, once the pull step ran, else null
 */
public record PreparedGeneration(InferenceRequest request, String id, long createdEpochSeconds,
                                 GenerationRequest generation, Mode mode, MigrationRequest migration,
                                 MigratedKv migrated) {

    /** How the engine runs the request. */
    public enum Mode {
        /** Prefill and decode here (Hybrid, or a Decode node given no migration). */
        NORMAL,
        /** Prefill role: the first token only; the KV blocks stay under a lease for a decode engine. */
        PREFILL,
        /** Decode role: the prompt's KV comes from a prefill engine; decoding starts from its first token. */
        MIGRATED
    }

    public int promptTokens() {
        return generation.promptTokens().length;
    }

    /**
     * The prompt tokens whose KV was not computed for this request: from this engine's prefix cache, or for a
     * migrated request, from the prefill engine's (what usage reports; the decode side's own reuse only saves
     * transfer).
     */
    public int cachedTokens(io.distserve.engine.FinishEvent finish) {
        return mode == Mode.MIGRATED ? migration.cachedTokens() : finish.cachedTokens();
    }

    public PreparedGeneration withMigrated(MigratedKv kv) {
        return new PreparedGeneration(request, id, createdEpochSeconds, generation, mode, migration, kv);
    }
}
