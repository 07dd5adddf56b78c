package io.distserve.engine.kv;

import java.util.Arrays;

/**
 * One sequence's growing list of KV block ids: position {@code p} lives in block {@code get(p / blockSize)} at slot
 * {@code p % blockSize}. Not thread-safe: it belongs to the engine loop.
 */
public final class BlockTable {

    private int[] ids;
    private int size;

    public BlockTable() {
        this.ids = new int[4];
    }

    /** A table that starts with {@code initial} (e.g. blocks filled by a migration). */
    public BlockTable(int[] initial) {
        this.ids = Arrays.copyOf(initial, Math.max(4, initial.length));
        this.size = initial.length;
    }

    public void append(int[] blocks) {
        if (size + blocks.length > ids.length) {
            ids = Arrays.copyOf(ids, Math.max(ids.length * 2, size + blocks.length));
        }
        System.arraycopy(blocks, 0, ids, size, blocks.length);
        size += blocks.length;
    }

    public int size() {
        return size;
    }

    public int get(int index) {
        if (index < 0 || index >= size) {
            throw new IndexOutOfBoundsException("block index " + index + " of " + size);
        }
        return ids[index];
    }

    /** Tokens the table can hold. */
    public int capacity(int blockSize) {
        return size * blockSize;
    }

    public int[] toArray() {
        return Arrays.copyOf(ids, size);
    }

    /** Empties the table and returns what it held (the caller now owns those references). */
    public int[] clear() {
        int[] held = toArray();
        size = 0;
        return held;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    @Override
    public String toString() {
        return Arrays.toString(toArray());
    }
}
