package io.distserve.processors.disagg;

/** A prompt's KV blocks pulled into this engine's pool, and the first token the prefill engine sampled. */
public record MigratedKv(int[] localBlocks, int firstToken, String remoteEngineId, String remoteSessionId) {
}
