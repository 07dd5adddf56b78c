package io.distserve.engine.kv;

/**
 * What changed in an engine's prefix cache since a reader's cursor: the keys of blocks that became cached
 * ({@code stored}) and that were evicted ({@code removed}), in order, and the cursor to ask from next time; a key is in at most one of the two lists (its last change wins). When the
 * reader's cursor is older than the retained events (or from another run of the engine), {@code reset} is true and
 * {@code stored} lists every key cached now: the reader replaces what it had.
 */
public record PrefixCacheDelta(boolean reset, long next, long[] stored, long[] removed) {
}
