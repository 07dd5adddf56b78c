package io.distserve.engine.safetensors;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class FloatCodecTest {

    private static int bf16(float f) {
        return FloatCodec.floatToBf16(f) & 0xFFFF;
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertThat(bf16(1.0f)).isEqualTo(0x3F80);
        assertThat(bf16(-2.0f)).isEqualTo(0xC000);
        // 1 + 2^-8 is exactly halfway between 1.0 (even mantissa) and 1 + 2^-7: ties go to even, i.e. down.
        assertThat(bf16(Float.intBitsToFloat(0x3F80_8000))).isEqualTo(0x3F80);
        // Halfway between 0x3F81 (odd) and 0x3F82: ties go to even, i.e. up.
        assertThat(bf16(Float.intBitsToFloat(0x3F81_8000))).isEqualTo(0x3F82);
        // Just above and below halfway.
        assertThat(bf16(Float.intBitsToFloat(0x3F80_8001))).isEqualTo(0x3F81);
        assertThat(bf16(Float.intBitsToFloat(0x3F80_7FFF))).isEqualTo(0x3F80);
        // Rounding carries into the exponent.
        assertThat(bf16(Float.intBitsToFloat(0x3FFF_FFFF))).isEqualTo(0x4000);
        // The largest float rounds to infinity; infinities and signed zeros are kept.
        assertThat(bf16(Float.MAX_VALUE)).isEqualTo(0x7F80);
        assertThat(bf16(Float.NEGATIVE_INFINITY)).isEqualTo(0xFF80);
        assertThat(bf16(-0.0f)).isEqualTo(0x8000);
        // Subnormals round like everything else.
        assertThat(bf16(Float.MIN_VALUE)).isEqualTo(0x0000);
    }

    @Test
    void bf16KeepsNaNEvenWhenItsPayloadIsInTheDiscardedBits() {
        float nanWithLowPayload = Float.intBitsToFloat(0x7F80_0001);
        assertThat(Float.isNaN(nanWithLowPayload)).isTrue();
        assertThat(Float.isNaN(FloatCodec.bf16ToFloat(FloatCodec.floatToBf16(nanWithLowPayload)))).isTrue();
        assertThat(Float.isNaN(FloatCodec.bf16ToFloat(FloatCodec.floatToBf16(Float.NaN)))).isTrue();
        float negativeNaN = Float.intBitsToFloat(0xFFC0_0000);
        assertThat(bf16(negativeNaN) & 0x8000).isEqualTo(0x8000);
    }

    @Test
    void bf16DecodesExactly() {
        assertThat(FloatCodec.bf16ToFloat((short) 0x3F80)).isEqualTo(1.0f);
        assertThat(FloatCodec.bf16ToFloat((short) 0xC040)).isEqualTo(-3.0f);
        assertThat(FloatCodec.bf16ToFloat((short) 0x3E20)).isEqualTo(0.15625f);
    }

    @Test
    void f16DecodesNormalsSubnormalsAndSpecials() {
        assertThat(FloatCodec.f16ToFloat((short) 0x3C00)).isEqualTo(1.0f);
        assertThat(FloatCodec.f16ToFloat((short) 0xC000)).isEqualTo(-2.0f);
        assertThat(FloatCodec.f16ToFloat((short) 0x7BFF)).isEqualTo(65504f);
        assertThat(FloatCodec.f16ToFloat((short) 0x0001)).isEqualTo(0x1p-24f);
        assertThat(FloatCodec.f16ToFloat((short) 0x03FF)).isEqualTo(1023 * 0x1p-24f);
        assertThat(FloatCodec.f16ToFloat((short) 0x0400)).isEqualTo(0x1p-14f);
        assertThat(FloatCodec.f16ToFloat((short) 0x8000)).isEqualTo(-0.0f);
        assertThat(FloatCodec.f16ToFloat((short) 0x7C00)).isEqualTo(Float.POSITIVE_INFINITY);
        assertThat(FloatCodec.f16ToFloat((short) 0xFC00)).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(FloatCodec.f16ToFloat((short) 0x7E00)).isNaN();
    }

    @Test
    void f16EncodeInvertsDecodeForEveryHalfAndRoundsToNearestEven() {
        for (int h = 0; h < 0x10000; h++) {
            float f = FloatCodec.f16ToFloat((short) h);
            if (Float.isNaN(f)) {
                assertThat(FloatCodec.f16ToFloat(FloatCodec.floatToF16(f))).isNaN();
            } else {
                assertThat(FloatCodec.floatToF16(f) & 0xFFFF).as("half 0x%04x", h).isEqualTo(h);
            }
        }
        // Halfway between 1.0 and the next half (1 + 2^-10): ties to even (1.0).
        assertThat(FloatCodec.floatToF16(1.0f + 0x1p-11f) & 0xFFFF).isEqualTo(0x3C00);
        assertThat(FloatCodec.floatToF16(65519f) & 0xFFFF).isEqualTo(0x7BFF);
        assertThat(FloatCodec.floatToF16(65520f) & 0xFFFF).isEqualTo(0x7C00);
        // Half the smallest subnormal ties to zero; a bit more rounds up to it.
        assertThat(FloatCodec.floatToF16(0x1p-25f) & 0xFFFF).isEqualTo(0x0000);
        assertThat(FloatCodec.floatToF16(0x1.1p-25f) & 0xFFFF).isEqualTo(0x0001);
    }

    @Test
    void encodeThenDecodeRoundTripsRepresentableValues() {
        float[] values = {1.0f, -2.5f, 0.125f, 3.0f, -0.0f};
        for (DType dtype : DType.values()) {
            ByteBuffer bytes = FloatCodec.encode(values, dtype);
            assertThat(bytes.remaining()).isEqualTo(values.length * dtype.bytes());
            float[] back = new float[values.length];
            FloatCodec.decode(bytes, dtype, back);
            assertThat(back).as(dtype.name()).containsExactly(values);
        }
    }
}
