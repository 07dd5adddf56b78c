package io.distserve.bench;

/**
 * What one request measured, on the client's clock. Times in nanoseconds from when the request was sent.
 *
 * @param ok               the answer ended with [DONE] (or a whole 200 answer) and no error event
 * @param error            the first error (HTTP status and message, an SSE error event, a broken stream), or null
 * @param ttftNanos        to the first chunk that carried text (-1 when none came)
 * @param itlNanos         the gaps between consecutive text-carrying chunks
 * @param e2eNanos         to the end of the answer
 * @param promptTokens     as the server reported them (usage), or -1
 * @param completionTokens as the server reported them, else the text-carrying chunks counted
 * @param cachedTokens     usage.prompt_tokens_details.cached_tokens, or 0
 * @param expectedPrompt   the prompt's length as the dataset made it (-1 unknown)
 */
public record RequestOutcome(boolean ok, String error, long ttftNanos, long[] itlNanos, long e2eNanos,
                             int promptTokens, int completionTokens, int cachedTokens, int expectedPrompt) {

    public static RequestOutcome failed(String error, long e2eNanos, int expectedPrompt) {
        return new RequestOutcome(false, error, -1, new long[0], e2eNanos, -1, 0, 0, expectedPrompt);
    }

    public double ttftMs() {
        return ttftNanos / 1e6;
    }

    public double e2elMs() {
        return e2eNanos / 1e6;
    }

    /** (E2E - TTFT) / (output tokens - 1); null for answers of fewer than 2 tokens. */
    public Double tpotMs() {
        if (completionTokens < 2 || ttftNanos < 0) {
            return null;
        }
        return (e2eNanos - ttftNanos) / 1e6 / (completionTokens - 1);
    }
}
