package io.distserve.engine.safetensors;

/**
 * A tensor as listed in a safetensors header.
 *
 * @param spec  name, dtype and shape
 * @param begin first byte, relative to the start of the data section (the header's {@code data_offsets[0]})
 * @param end   one past the last byte, relative to the data section
 */
public record TensorEntry(TensorSpec spec, long begin, long end) {

    public String name() {
        return spec.name();
    }

    public long byteSize() {
        return end - begin;
    }
}
