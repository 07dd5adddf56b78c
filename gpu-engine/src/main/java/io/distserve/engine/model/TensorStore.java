package io.distserve.engine.model;

import io.distserve.engine.safetensors.DType;
import java.nio.ByteBuffer;
import java.util.Set;

/**
 * Named tensors of a checkpoint, possibly spread over several files. Implementations validate as they read:
 * a missing tensor, a shape other than the expected one or a truncated file is a {@link CheckpointException}
 * naming the file and the tensor.
 */
public interface TensorStore extends AutoCloseable {

    Set<String> names();

    boolean contains(String name);

    /** Shape as stored. */
    long[] shape(String name);

    DType dtype(String name);

    /**
     * Reads a tensor converted to float32 after checking its shape equals {@code expectedShape}.
     * For the CPU backend.
     */
    float[] readFloats(String name, long... expectedShape);

    /**
     * The raw little-endian bytes of a tensor (a read-only view on the mapped file, possibly larger than 2 GiB
     * tensors are not supported here; use {@link #shape} to size them). For backends that upload bf16 as stored.
     */
    ByteBuffer rawBytes(String name, long... expectedShape);

    @Override
    void close();
}
