package io.distserve.engine.kv;

import io.distserve.engine.safetensors.DType;

/**
 * The byte layout of a paged KV pool, shared with peers through {@code engine_info} so that they can compute the
 * offset of any (block, layer) and pull it.
 *
 * <p>Block-major: block {@code b} occupies bytes {@code [b * bytesPerBlock, (b + 1) * bytesPerBlock)}, so that
 * migrating a run of consecutive blocks is one contiguous read. Inside a block the order is
 * {@code [layer][k=0 | v=1][kvHead][slot][headDim]}: attention reads one head's keys as one contiguous run.
 */
public record KvCacheLayout(int numLayers, int numKvHeads, int headDim, int blockSize, int numBlocks, DType dtype) {

    public KvCacheLayout {
        if (numLayers < 1 || numKvHeads < 1 || headDim < 1 || blockSize < 1 || numBlocks < 0) {
            throw new IllegalArgumentException("invalid KV layout " + numLayers + "x" + numKvHeads + "x" + headDim
                    + " block " + blockSize + " blocks " + numBlocks);
        }
    }

    /** Elements of one (layer, k-or-v, head) run inside a block. */
    public long elementsPerHeadRun() {
        return (long) blockSize * headDim;
    }

    public long elementsPerBlock() {
        return (long) numLayers * 2 * numKvHeads * blockSize * headDim;
    }

    public long bytesPerBlock() {
        return elementsPerBlock() * dtype.bytes();
    }

    public long totalBytes() {
        return bytesPerBlock() * numBlocks;
    }

    /** Element index (not bytes) of the first element of (block, layer, kOrV, head, slot=0, dim=0). */
    public long elementIndex(int block, int layer, int kOrV, int head) {
        return ((((long) block * numLayers + layer) * 2 + kOrV) * numKvHeads + head) * elementsPerHeadRun();
    }

    /** Blocks needed to hold {@code tokens} tokens. */
    public int blocksFor(int tokens) {
        return (tokens + blockSize - 1) / blockSize;
    }

    /** True when a peer with {@code other} can exchange blocks with us byte for byte. */
    public boolean compatibleWith(KvCacheLayout other) {
        return numLayers == other.numLayers && numKvHeads == other.numKvHeads && headDim == other.headDim
                && blockSize == other.blockSize && dtype == other.dtype;
    }
}
