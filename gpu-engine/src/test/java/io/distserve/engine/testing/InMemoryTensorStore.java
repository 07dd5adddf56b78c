package io.distserve.engine.testing;

import io.distserve.engine.model.CheckpointException;
import io.distserve.engine.model.TensorStore;
import io.distserve.engine.safetensors.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A {@link TensorStore} held in memory, for tests: name -> float32 values and a shape. With {@code bf16} every value
 * put is rounded to the nearest bfloat16 (ties to even), as a bf16 checkpoint would hold it, and the store reports
 * BF16 as the tensors' dtype.
 */
public final class InMemoryTensorStore implements TensorStore {

    private record Entry(float[] data, long[] shape) {
    }

    private final Map<String, Entry> tensors = new LinkedHashMap<>();
    private final boolean bf16;

    public InMemoryTensorStore(boolean bf16) {
        this.bf16 = bf16;
    }

    public InMemoryTensorStore put(String name, float[] data, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        if (n != data.length) {
            throw new IllegalArgumentException(name + ": " + data.length + " values for shape " + Arrays.toString(shape));
        }
        float[] copy = data.clone();
        if (bf16) {
            for (int i = 0; i < copy.length; i++) {
                copy[i] = roundToBf16(copy[i]);
            }
        }
        tensors.put(name, new Entry(copy, shape.clone()));
        return this;
    }

    public InMemoryTensorStore remove(String name) {
        tensors.remove(name);
        return this;
    }

    /** Nearest bfloat16 (round half to even) of a finite float, as a float. */
    public static float roundToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return Float.intBitsToFloat(rounded & 0xFFFF0000);
    }

    @Override
    public Set<String> names() {
        return Collections.unmodifiableSet(tensors.keySet());
    }

    @Override
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    @Override
    public long[] shape(String name) {
        return entry(name).shape().clone();
    }

    @Override
    public DType dtype(String name) {
        entry(name);
        return bf16 ? DType.BF16 : DType.F32;
    }

    @Override
    public float[] readFloats(String name, long... expectedShape) {
        Entry e = entry(name);
        if (!Arrays.equals(e.shape(), expectedShape)) {
            throw new CheckpointException("in-memory: tensor " + name + " has shape " + Arrays.toString(e.shape())
                    + ", expected " + Arrays.toString(expectedShape));
        }
        return e.data().clone();
    }

    @Override
    public ByteBuffer rawBytes(String name, long... expectedShape) {
        float[] f = readFloats(name, expectedShape);
        ByteBuffer b = ByteBuffer.allocate(f.length * (bf16 ? 2 : 4)).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : f) {
            if (bf16) {
                b.putShort((short) (Float.floatToRawIntBits(v) >>> 16));
            } else {
                b.putFloat(v);
            }
        }
        return b.flip().asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    private Entry entry(String name) {
        Entry e = tensors.get(name);
        if (e == null) {
            throw new CheckpointException("in-memory: no tensor " + name);
        }
        return e;
    }

    @Override
    public void close() {
    }
}
