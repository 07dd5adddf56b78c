package io.distserve.engine.cuda;

import io.distserve.engine.model.CheckpointException;
import io.distserve.engine.model.ExpectedTensor;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.model.ModelTensors;
import io.distserve.engine.model.TensorStore;
import io.distserve.engine.safetensors.DType;
import io.distserve.engine.safetensors.FloatCodec;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * Seeded random bf16 weights for every tensor of a config, held in memory (for the self-check, which runs from
 * the application jar where the test helpers are absent). Scales as the test helper TinyModels: projections
 * N(0, (g/sqrt(in))^2), norms 1 + N(0, 0.01), embeddings/LM head N(0, (3/sqrt(hidden))^2).
 */
final class RandomStore implements TensorStore {

    private final Map<String, short[]> data = new LinkedHashMap<>();
    private final Map<String, long[]> shapes = new LinkedHashMap<>();

    RandomStore(ModelConfig c, long seed) {
        Random rnd = new Random(seed);
        for (ExpectedTensor t : ModelTensors.expected(c)) {
            long[] shape = t.shape();
            int n = (int) t.elementCount();
            short[] v = new short[n];
            boolean norm = shape.length == 1;
            double scale = norm ? 0.1 : (t.name().contains("embed") || t.name().contains("lm_head")
                    ? 3.0 / Math.sqrt(c.hiddenSize())
                    : (t.name().contains("q_proj") || t.name().contains("k_proj") ? 2.0 : 1.0) / Math.sqrt(shape[1]));
            for (int i = 0; i < n; i++) {
                double g = rnd.nextGaussian() * scale;
                v[i] = FloatCodec.floatToBf16((float) (norm ? 1 + g : g));
            }
            data.put(t.name(), v);
            shapes.put(t.name(), shape);
        }
    }

    @Override
    public Set<String> names() {
        return data.keySet();
    }

    @Override
    public boolean contains(String name) {
        return data.containsKey(name);
    }

    @Override
    public long[] shape(String name) {
        entry(name, null);
        return shapes.get(name).clone();
    }

    @Override
    public DType dtype(String name) {
        entry(name, null);
        return DType.BF16;
    }

    @Override
    public float[] readFloats(String name, long... expectedShape) {
        short[] v = entry(name, expectedShape);
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = FloatCodec.bf16ToFloat(v[i]);
        }
        return f;
    }

    @Override
    public ByteBuffer rawBytes(String name, long... expectedShape) {
        short[] v = entry(name, expectedShape);
        ByteBuffer b = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asShortBuffer().put(v);
        return b.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    private short[] entry(String name, long[] expectedShape) {
        short[] v = data.get(name);
        if (v == null) {
            throw new CheckpointException("random store: no tensor " + name);
        }
        if (expectedShape != null && !Arrays.equals(shapes.get(name), expectedShape)) {
            throw new CheckpointException("random store: tensor " + name + " has shape "
                    + Arrays.toString(shapes.get(name)) + ", expected " + Arrays.toString(expectedShape));
        }
        return v;
    }

    @Override
    public void close() {
    }
}
