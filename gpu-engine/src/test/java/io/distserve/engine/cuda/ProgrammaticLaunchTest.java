package io.distserve.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.jna.Memory;
import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Test;

/**
 * The host half of programmatic launches (no GPU needed): the JCuda addresses, the kernel-parameter array and the
 * driver structs as cuda.h lays them out. The launch itself runs in the self-check's graph rows on a GPU.
 */
class ProgrammaticLaunchTest {

    /** Binding needs no GPU: JNA finds libcuda.so.1 or says why not; the reflection half must work everywhere. */
    private static ProgrammaticLaunch launcherOrReflectionOnly() throws Exception {
        ProgrammaticLaunch.Loaded loaded = ProgrammaticLaunch.load();
        if (loaded.launcher() != null) {
            return loaded.launcher();
        }
        assertThat(loaded.unavailableReason()).isNotBlank();
        var ctor = ProgrammaticLaunch.class.getDeclaredConstructors()[0];
        ctor.setAccessible(true);
        var np = jcuda.NativePointerObject.class.getDeclaredMethod("getNativePointer");
        np.setAccessible(true);
        var off = jcuda.Pointer.class.getDeclaredMethod("getByteOffset");
        off.setAccessible(true);
        return (ProgrammaticLaunch) ctor.newInstance(null, np, off);
    }

    @Test
    void addressOfADevicePointerIncludesItsByteOffset() throws Exception {
        ProgrammaticLaunch l = launcherOrReflectionOnly();
        CUdeviceptr base = new CUdeviceptr();
        assertThat(l.address(base)).isZero();
        assertThat(l.address(base.withByteOffset(4096).withByteOffset(24))).isEqualTo(4120);
    }

    @Test
    void parametersAreOnePointerPerArgumentToItsValue() throws Exception {
        ProgrammaticLaunch l = launcherOrReflectionOnly();
        Object[] args = {new CUdeviceptr().withByteOffset(0x1000), 7, 2.5f, 1L << 40, null};
        Memory m = l.parameters(args);
        long slots = com.sun.jna.Pointer.nativeValue(m);
        for (int i = 0; i < args.length; i++) {
            assertThat(com.sun.jna.Pointer.nativeValue(m.getPointer(8L * args.length + 8L * i)))
                    .as("pointer to argument %d", i).isEqualTo(slots + 8L * i);
        }
        assertThat(m.getLong(0)).isEqualTo(0x1000);
        assertThat(m.getInt(8)).isEqualTo(7);
        assertThat(m.getFloat(16)).isEqualTo(2.5f);
        assertThat(m.getLong(24)).isEqualTo(1L << 40);
        assertThat(m.getLong(32)).isZero();
    }

    @Test
    void anUnsupportedArgumentIsRefusedNamingItsPosition() throws Exception {
        ProgrammaticLaunch l = launcherOrReflectionOnly();
        assertThatThrownBy(() -> l.parameters(new Object[] {1, "x"}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("argument 1");
    }

    @Test
    void launchConfigAndAttributeFollowCudaH() {
        Memory attr = ProgrammaticLaunch.programmaticAttribute();
        assertThat(attr.size()).isEqualTo(72);
        assertThat(attr.getInt(0)).isEqualTo(6);   // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
        assertThat(attr.getInt(8)).isEqualTo(1);   // the value union starts at 8
        Memory c = ProgrammaticLaunch.config(3, 4, 5, 256, 1024, 0xABCDL, attr);
        assertThat(c.size()).isEqualTo(56);
        assertThat(new int[] {c.getInt(0), c.getInt(4), c.getInt(8), c.getInt(12), c.getInt(16), c.getInt(20),
                c.getInt(24)}).containsExactly(3, 4, 5, 256, 1, 1, 1024);
        assertThat(c.getLong(32)).isEqualTo(0xABCDL);           // hStream after 4 bytes of padding
        assertThat(com.sun.jna.Pointer.nativeValue(c.getPointer(40))).isEqualTo(com.sun.jna.Pointer.nativeValue(attr));
        assertThat(c.getInt(48)).isEqualTo(1);                  // numAttrs
    }
}
