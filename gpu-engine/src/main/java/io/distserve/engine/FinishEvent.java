package io.distserve.engine;

import io.distserve.engine.sched.FinishReason;

/**
 * The end of a request.
 *
 * @param reason           stop, length or abort (failures go to {@link GenerationListener#onError}, whose exception
 *                         carries a partial event with reason error)
 * @param promptTokens     prompt length
 * @param completionTokens generated tokens, EOS or stop id included (resumed ones too)
 * @param tokenIds         the ids generated here (after the resumed ones, if any)
 * @param text             the full output text (the concatenation of the token events' deltas)
 * @param preemptions      how often the sequence was preempted and recomputed
 * @param keptBlocks       empty, except for a request submitted with
 *                         {@link LlmEngine#submitKeepingBlocks(GenerationRequest, GenerationListener)} that ended
 *                         normally: the KV blocks of its prompt, whose ownership now lies with the receiver (free them
 *                         through the engine's {@link io.distserve.engine.kv.BlockManager})
 * @param cachedTokens     prompt tokens whose K/V came from the prefix cache (not computed for this request)
 */
public record FinishEvent(
        String requestId,
        FinishReason reason,
        int promptTokens,
        int completionTokens,
        int[] tokenIds,
        String text,
        RequestTiming timing,
        int preemptions,
        int[] keptBlocks,
        int cachedTokens) {
}
