package io.distserve.engine.cuda;

import io.distserve.engine.model.LayerTensorNames;
import io.distserve.engine.model.ModelConfig;
import io.distserve.engine.model.ModelTensors;
import io.distserve.engine.model.TensorStore;
import io.distserve.engine.safetensors.DType;
import io.distserve.engine.safetensors.FloatCodec;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import jcuda.Pointer;

/**
 * The model's weights in device memory, bf16 as stored (a non-bf16 checkpoint is converted once, on upload).
 * Projections that read the same input are concatenated along their output rows so that each is one GEMM:
 * {@code qkv = [q_proj; k_proj; v_proj]} and {@code gateUp} = gate_proj and up_proj with their rows interleaved in
 * groups of {@link CudaKernels#GATE_GROUP} (8 gate rows, the same 8 features' up rows, ...), so that a decode GEMM's
 * 16-row tile holds both halves of its features and can apply the activation itself. A tied LM head is the
 * embedding buffer itself.
 */
final class CudaWeights implements AutoCloseable {

    /** Host staging for uploads: a direct buffer, so that any TensorStore buffer (heap, mapped, read-only) works. */
    private static final int STAGE_BYTES = 32 << 20;

    record Layer(DeviceBuffer inputNorm, DeviceBuffer qkv, DeviceBuffer qNorm, DeviceBuffer kNorm, DeviceBuffer o,
                 DeviceBuffer postNorm, DeviceBuffer gateUp, DeviceBuffer down) {
    }

    final DeviceBuffer embedding;
    final List<Layer> layers;
    final DeviceBuffer finalNorm;
    final DeviceBuffer lmHead;
    private final List<DeviceBuffer> owned = new ArrayList<>();
    private final ByteBuffer stage;

    private CudaWeights(CudaContext ctx, ModelConfig c, TensorStore store) {
        stage = ByteBuffer.allocateDirect(STAGE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        long hidden = c.hiddenSize();
        long inter = c.intermediateSize();
        long qDim = c.qDim();
        long kvDim = c.kvDim();
        try {
            embedding = upload(ctx, "embedding", store, ModelTensors.embedTokens(), c.vocabSize(), hidden);
            List<Layer> ls = new ArrayList<>();
            for (int i = 0; i < c.numLayers(); i++) {
                LayerTensorNames n = ModelTensors.layer(i);
                String p = "layer" + i + ".";
                DeviceBuffer qkv = alloc(ctx, p + "qkv", 2 * (qDim + 2 * kvDim) * hidden);
                put(qkv, 0, store, n.qProj(), qDim, hidden);
                put(qkv, 2 * qDim * hidden, store, n.kProj(), kvDim, hidden);
                put(qkv, 2 * (qDim + kvDim) * hidden, store, n.vProj(), kvDim, hidden);
                DeviceBuffer gateUp = alloc(ctx, p + "gate_up", 2 * 2 * inter * hidden);
                putInterleaved(gateUp, store, n.gateProj(), n.upProj(), inter, hidden);
                ls.add(new Layer(
                        upload(ctx, p + "input_norm", store, n.inputLayernorm(), hidden),
                        qkv,
                        c.qkNorm() ? upload(ctx, p + "q_norm", store, n.qNorm(), c.headDim()) : null,
                        c.qkNorm() ? upload(ctx, p + "k_norm", store, n.kNorm(), c.headDim()) : null,
                        upload(ctx, p + "o_proj", store, n.oProj(), hidden, qDim),
                        upload(ctx, p + "post_norm", store, n.postAttentionLayernorm(), hidden),
                        gateUp,
                        upload(ctx, p + "down_proj", store, n.downProj(), hidden, inter)));
            }
            layers = List.copyOf(ls);
            finalNorm = upload(ctx, "final_norm", store, ModelTensors.finalNorm(), hidden);
            lmHead = c.tieWordEmbeddings() ? embedding
                    : upload(ctx, "lm_head", store, ModelTensors.lmHead(), c.vocabSize(), hidden);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    static CudaWeights upload(CudaContext ctx, ModelConfig c, TensorStore store) {
        return new CudaWeights(ctx, c, store);
    }

    long bytes() {
        return owned.stream().mapToLong(DeviceBuffer::bytes).sum();
    }

    private DeviceBuffer alloc(CudaContext ctx, String name, long bytes) {
        DeviceBuffer b = ctx.allocate(name, bytes);
        owned.add(b);
        return b;
    }

    private DeviceBuffer upload(CudaContext ctx, String name, TensorStore store, String tensor, long... shape) {
        DeviceBuffer b = alloc(ctx, name, 2 * count(shape));
        put(b, 0, store, tensor, shape);
        return b;
    }

    private static long count(long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Copies tensor {@code name} (checked against {@code shape}) as bf16 into {@code dst} at byte {@code offset}. */
    private void put(DeviceBuffer dst, long offset, TensorStore store, String name, long... shape) {
        long bytes = 2 * count(shape);
        if (store.dtype(name) == DType.BF16) {
            ByteBuffer src = store.rawBytes(name, shape).duplicate().order(ByteOrder.LITTLE_ENDIAN);
            if (src.remaining() != bytes) {
                throw new IllegalStateException("tensor " + name + ": " + src.remaining() + " bytes, expected " + bytes);
            }
            long done = 0;
            while (src.hasRemaining()) {
                int len = Math.min(src.remaining(), STAGE_BYTES);
                ByteBuffer part = src.slice();
                part.limit(len);
                stage.clear();
                stage.put(part);
                stage.flip();  // position 0: Pointer.to sees the start either way
                dst.upload(offset + done, Pointer.to(stage), len);
                src.position(src.position() + len);
                done += len;
            }
        } else {
            float[] f = store.readFloats(name, shape);
            long done = 0;
            int perChunk = STAGE_BYTES / 2;
            for (int from = 0; from < f.length; from += perChunk) {
                int to = Math.min(f.length, from + perChunk);
                stage.clear();
                for (int i = from; i < to; i++) {
                    stage.putShort(FloatCodec.floatToBf16(f[i]));
                }
                stage.flip();
                dst.upload(offset + done, Pointer.to(stage), 2L * (to - from));
                done += 2L * (to - from);
            }
        }
    }

    /**
     * Uploads two [rows, cols] tensors into {@code dst} with their rows interleaved in groups of
     * {@link CudaKernels#GATE_GROUP}: a's group 0, b's group 0, a's group 1, ... (rows % GATE_GROUP == 0).
     */
    private void putInterleaved(DeviceBuffer dst, TensorStore store, String a, String b, long rows, long cols) {
        int g = CudaKernels.GATE_GROUP;
        if (rows % g != 0) {
            throw new IllegalStateException("tensors " + a + ", " + b + ": " + rows + " rows, not a multiple of " + g);
        }
        ByteBuffer[] src = {bf16Bytes(store, a, rows, cols), bf16Bytes(store, b, rows, cols)};
        long groupBytes = 2L * g * cols;
        if (groupBytes > STAGE_BYTES) {
            throw new IllegalStateException("tensor " + a + ": rows of " + cols + " columns do not fit the stage");
        }
        long groups = rows / g;
        long done = 0;
        stage.clear();
        for (long i = 0; i < groups; i++) {
            for (ByteBuffer t : src) {
                if (stage.remaining() < groupBytes) {
                    done += flushStage(dst, done);
                }
                ByteBuffer part = t.duplicate();
                part.position((int) (i * groupBytes)).limit((int) ((i + 1) * groupBytes));
                stage.put(part);
            }
        }
        flushStage(dst, done);
    }

    /** Uploads what the stage holds to {@code dst} at byte {@code offset}; clears it. @return the bytes uploaded */
    private long flushStage(DeviceBuffer dst, long offset) {
        int len = stage.position();
        if (len > 0) {
            stage.flip();
            dst.upload(offset, Pointer.to(stage), len);
        }
        stage.clear();
        return len;
    }

    /** Tensor {@code name} as little-endian bf16 bytes (a non-bf16 tensor converted on the heap). */
    private static ByteBuffer bf16Bytes(TensorStore store, String name, long... shape) {
        long bytes = 2 * count(shape);
        if (bytes > Integer.MAX_VALUE) {
            throw new IllegalStateException("tensor " + name + ": " + bytes + " bytes is too large to interleave");
        }
        ByteBuffer out;
        if (store.dtype(name) == DType.BF16) {
            out = store.rawBytes(name, shape).duplicate().order(ByteOrder.LITTLE_ENDIAN);
        } else {
            float[] f = store.readFloats(name, shape);
            out = ByteBuffer.allocate(2 * f.length).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : f) {
                out.putShort(FloatCodec.floatToBf16(v));
            }
            out.flip();
        }
        if (out.remaining() != bytes) {
            throw new IllegalStateException("tensor " + name + ": " + out.remaining() + " bytes, expected " + bytes);
        }
        return out.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public void close() {
        for (DeviceBuffer b : owned) {
            b.close();
        }
        owned.clear();
    }
}
