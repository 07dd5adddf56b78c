package io.distserve.kv.device;

/**
 * A range of GPU memory as the transports see it: opaque, addressed by byte offsets from 0 to {@link #size()}. The
 * {@link GpuDevice} that made it is the only thing that can copy to or from it.
 */
public interface DeviceMemory {

    /** Bytes from the start of this memory to its end. */
    long size();
}
