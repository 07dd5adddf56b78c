package io.distserve.engine.safetensors;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Conversions between float32 and the 16-bit float formats of checkpoints. Java 17 has no float16 support
 * ({@code Float.float16ToFloat} came in 20), so both 16-bit formats are decoded by hand.
 */
public final class FloatCodec {

    /** Elements converted per bulk transfer: large enough to amortise the buffer calls, small enough for L2. */
    private static final int BATCH = 16 * 1024;

    private FloatCodec() {
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** Round to nearest, ties to even; NaN stays NaN (a quiet NaN of the same sign), infinities stay infinite. */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) {
            // Plain truncation could clear every mantissa bit that survives and turn the NaN into an infinity.
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    public static float f16ToFloat(short half) {
        int h = half & 0xFFFF;
        int sign = (h & 0x8000) << 16;
        int exponent = (h >>> 10) & 0x1F;
        int mantissa = h & 0x3FF;
        if (exponent == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F80_0000 | (mantissa << 13));
        }
        if (exponent == 0) {
            // Subnormal (or zero): mantissa * 2^-24, exact in float32.
            float magnitude = mantissa * 0x1p-24f;
            return sign != 0 ? -magnitude : magnitude;
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    /** Round to nearest, ties to even, with overflow to infinity and gradual underflow to subnormals. */
    public static short floatToF16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int magnitude = bits & 0x7FFF_FFFF;
        if (magnitude > 0x7F80_0000) {
            return (short) (sign | 0x7E00 | ((magnitude >>> 13) & 0x3FF));
        }
        if (magnitude >= 0x477F_F000) {
            // At or beyond 65520, halfway between the largest finite half (65504) and 2^16: rounds to infinity.
            return (short) (sign | 0x7C00);
        }
        if (magnitude < 0x3880_0000) {
            // Below the smallest normal half (2^-14): the result is subnormal; let float arithmetic do the rounding.
            // Adding 0.5 shifts the value so that its float32 mantissa's low bits are the half's mantissa.
            float shifted = Float.intBitsToFloat(magnitude) + 0.5f;
            return (short) (sign | (Float.floatToRawIntBits(shifted) - 0x3F00_0000));
        }
        int rounded = magnitude + 0x0FFF + ((magnitude >>> 13) & 1);
        return (short) (sign | ((rounded - 0x3800_0000) >>> 13));
    }

    /**
     * Decodes {@code dst.length} elements of {@code dtype} from {@code src} (read from its position on; the buffer's
     * own position is left alone).
     */
    public static void decode(ByteBuffer src, DType dtype, float[] dst) {
        ByteBuffer in = src.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> in.asFloatBuffer().get(dst);
            case BF16 -> decode16(in.asShortBuffer(), dst, true);
            case F16 -> decode16(in.asShortBuffer(), dst, false);
            default -> throw new IllegalArgumentException("no decoder for " + dtype);
        }
    }

    private static void decode16(ShortBuffer in, float[] dst, boolean bf16) {
        short[] batch = new short[Math.min(BATCH, dst.length)];
        for (int done = 0; done < dst.length; ) {
            int n = Math.min(batch.length, dst.length - done);
            in.get(batch, 0, n);
            for (int i = 0; i < n; i++) {
                dst[done + i] = bf16 ? bf16ToFloat(batch[i]) : f16ToFloat(batch[i]);
            }
            done += n;
        }
    }

    /** Encodes {@code values} as {@code dtype}, little-endian, at {@code dst}'s position, advancing it. */
    public static void encode(float[] values, DType dtype, ByteBuffer dst) {
        ByteBuffer out = dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> {
                FloatBuffer floats = out.asFloatBuffer();
                floats.put(values);
            }
            case BF16 -> {
                ShortBuffer shorts = out.asShortBuffer();
                for (float v : values) {
                    shorts.put(floatToBf16(v));
                }
            }
            case F16 -> {
                ShortBuffer shorts = out.asShortBuffer();
                for (float v : values) {
                    shorts.put(floatToF16(v));
                }
            }
            default -> throw new IllegalArgumentException("no encoder for " + dtype);
        }
        dst.position(dst.position() + values.length * dtype.bytes());
    }

    /** {@code values} encoded as {@code dtype} in a new little-endian heap buffer, positioned at 0. */
    public static ByteBuffer encode(float[] values, DType dtype) {
        ByteBuffer buffer = ByteBuffer.allocate(values.length * dtype.bytes()).order(ByteOrder.LITTLE_ENDIAN);
        encode(values, dtype, buffer);
        return buffer.flip();
    }
}
