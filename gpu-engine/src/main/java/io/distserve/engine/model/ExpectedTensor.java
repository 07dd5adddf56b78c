package io.distserve.engine.model;

import java.util.Arrays;
import java.util.Objects;

/**
 * A tensor a model needs: its Hugging Face name and shape.
 *
 * @param name  e.g. {@code model.layers.0.self_attn.q_proj.weight}
 * @param shape dimensions as stored ({@code [out, in]} for linear weights)
 */
public record ExpectedTensor(String name, long... shape) {

    public ExpectedTensor {
        Objects.requireNonNull(name, "name");
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long elementCount() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ExpectedTensor t && name.equals(t.name) && Arrays.equals(shape, t.shape);
    }

    @Override
    public int hashCode() {
        return 31 * name.hashCode() + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return name + " " + Arrays.toString(shape);
    }
}
