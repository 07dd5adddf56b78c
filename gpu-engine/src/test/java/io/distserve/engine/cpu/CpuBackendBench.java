package io.distserve.engine.cpu;

import io.distserve.engine.SequenceSlice;
import io.distserve.engine.SequenceSlice.LogitsMode;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.testing.InMemoryTensorStore;
import io.distserve.engine.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A rough decode/prefill timing of the CPU backend on random weights (not a unit test: run by hand with the test
 * classpath, e.g. {@code java -cp target/classes:target/test-classes io.distserve.engine.cpu.CpuBackendBench tiny 2}
 * or {@code ... CpuBackendBench 0.6b 2 4} for a Qwen3-0.6B shape with 4 of its 28 layers).
 */
public final class CpuBackendBench {

    public static void main(String[] args) {
        String shape = args.length > 0 ? args[0] : "tiny";
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int layers = args.length > 2 ? Integer.parseInt(args[2]) : 28;
        ModelConfig c = shape.equals("tiny") ? TinyModels.qwen3()
                : TinyModels.qwen3Shaped(1024, 3072, layers, 16, 8, 128, 151936);
        long t0 = System.nanoTime();
        InMemoryTensorStore store = uniformWeights(c);
        int blockSize = 16;
        int prompt = shape.equals("tiny") ? 64 : 32;
        int steps = shape.equals("tiny") ? 200 : 8;
        try (CpuBackend b = CpuBackend.create(c, store, blockSize, 8 * ((prompt + steps * 2) / blockSize + 2),
                threads)) {
            System.out.printf("%s: %d layers, hidden %d, vocab %d, %d threads, loaded in %.1f s%n", shape,
                    c.numLayers(), c.hiddenSize(), c.vocabSize(), threads, (System.nanoTime() - t0) / 1e9);
            int perSeq = b.kvLayout().numBlocks() / 8;
            int[][] tables = new int[8][perSeq];
            for (int s = 0; s < 8; s++) {
                for (int j = 0; j < perSeq; j++) {
                    tables[s][j] = s * perSeq + j;
                }
            }
            int[] tokens = TinyModels.randomTokens(1, prompt, c.vocabSize());
            for (int s = 0; s < 8; s++) {
                long p0 = System.nanoTime();
                b.forward(List.of(new SequenceSlice(s, tokens, 0, tables[s], LogitsMode.LAST)));
                if (s == 0 || s == 7) {
                    double ms = (System.nanoTime() - p0) / 1e6;
                    System.out.printf("prefill %d tokens: %.1f ms (%.0f tok/s)%n", prompt, ms, prompt / ms * 1e3);
                }
            }
            for (int batch : new int[] {1, 8}) {
                int pos = prompt;
                // warm-up
                for (int i = 0; i < Math.max(2, steps / 10); i++) {
                    decode(b, tables, batch, pos++);
                }
                long d0 = System.nanoTime();
                for (int i = 0; i < steps / 2; i++) {
                    decode(b, tables, batch, pos++);
                }
                double ms = (System.nanoTime() - d0) / 1e6 / (steps / 2);
                System.out.printf("decode batch %d: %.2f ms/step, %.1f tok/s%n", batch, ms, batch / ms * 1e3);
            }
        }
    }

    private static void decode(CpuBackend b, int[][] tables, int batch, int pos) {
        List<SequenceSlice> slices = new ArrayList<>();
        for (int s = 0; s < batch; s++) {
            slices.add(new SequenceSlice(s, new int[] {(pos * 31 + s) % 100}, pos, tables[s], LogitsMode.LAST));
        }
        b.forward(slices);
    }

    /** Uniform weights (fast to generate for large shapes), scaled like {@link TinyModels#randomWeights}. */
    static InMemoryTensorStore uniformWeights(ModelConfig c) {
        SplittableRandom r = new SplittableRandom(42);
        InMemoryTensorStore s = new InMemoryTensorStore(false);
        int h = c.hiddenSize();
        int m = c.intermediateSize();
        s.put("model.embed_tokens.weight", fill(r, (long) c.vocabSize() * h, 3 / Math.sqrt(h)), c.vocabSize(), h);
        for (int i = 0; i < c.numLayers(); i++) {
            String p = "model.layers." + i + ".";
            s.put(p + "input_layernorm.weight", fill(r, h, 0), h);
            s.put(p + "post_attention_layernorm.weight", fill(r, h, 0), h);
            s.put(p + "self_attn.q_proj.weight", fill(r, (long) c.qDim() * h, 2 / Math.sqrt(h)), c.qDim(), h);
            s.put(p + "self_attn.k_proj.weight", fill(r, (long) c.kvDim() * h, 2 / Math.sqrt(h)), c.kvDim(), h);
            s.put(p + "self_attn.v_proj.weight", fill(r, (long) c.kvDim() * h, 1 / Math.sqrt(h)), c.kvDim(), h);
            s.put(p + "self_attn.o_proj.weight", fill(r, (long) h * c.qDim(), 1 / Math.sqrt(c.qDim())), h, c.qDim());
            s.put(p + "self_attn.q_norm.weight", fill(r, c.headDim(), 0), c.headDim());
            s.put(p + "self_attn.k_norm.weight", fill(r, c.headDim(), 0), c.headDim());
            s.put(p + "mlp.gate_proj.weight", fill(r, (long) m * h, 1 / Math.sqrt(h)), m, h);
            s.put(p + "mlp.up_proj.weight", fill(r, (long) m * h, 1 / Math.sqrt(h)), m, h);
            s.put(p + "mlp.down_proj.weight", fill(r, (long) h * m, 1 / Math.sqrt(m)), h, m);
        }
        s.put("model.norm.weight", fill(r, h, 0), h);
        return s;
    }

    /** Uniform in +-sqrt(3)*scale (std = scale); scale 0 gives ones (norm weights). */
    private static float[] fill(SplittableRandom r, long n, double scale) {
        float[] a = new float[(int) n];
        double w = Math.sqrt(3) * scale;
        for (int i = 0; i < a.length; i++) {
            a[i] = scale == 0 ? 1f : (float) ((r.nextDouble() * 2 - 1) * w);
        }
        return a;
    }
}
