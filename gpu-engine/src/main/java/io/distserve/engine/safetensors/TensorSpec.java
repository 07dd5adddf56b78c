package io.distserve.engine.safetensors;

import java.util.Arrays;
import java.util.Objects;

/**
 * Name, element type and shape of one tensor: what a safetensors header says about it, minus where it lies.
 *
 * @param name  the tensor's key in the header
 * @param dtype element type
 * @param shape dimensions, outermost first (empty for a scalar)
 */
public record TensorSpec(String name, DType dtype, long[] shape) {

    public TensorSpec {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        shape = shape.clone();
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor " + name + ": negative dimension in " + Arrays.toString(shape));
            }
        }
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Product of the dimensions; 1 for a scalar. */
    public long elementCount() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long byteSize() {
        return Math.multiplyExact(elementCount(), (long) dtype.bytes());
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorSpec t && name.equals(t.name) && dtype == t.dtype && Arrays.equals(shape, t.shape);
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape));
    }

    @Override
    public String toString() {
        return name + " " + dtype.safetensorsName() + " " + Arrays.toString(shape);
    }
}
