package io.distserve.engine;

/**
 * One generated token.
 *
 * @param tokenId   the sampled id (EOS and stop ids included: they end the sequence but add no text)
 * @param textDelta text that may be streamed now; often empty (a character split over tokens, text held back
 *                  because it may start a stop string). The deltas of all of a request's events concatenate to
 *                  its final text.
 * @param index     0 for the first generated token
 */
public record TokenEvent(String requestId, int tokenId, String textDelta, int index) {
}
