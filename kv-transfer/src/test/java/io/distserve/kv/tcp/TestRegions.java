package io.distserve.kv.tcp;

import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.RegionLayout;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Regions for tests: seeded random contents, and a deliberately slow one. */
final class TestRegions {

    private TestRegions() {
    }

    /** Direct chunks of the given sizes filled with bytes from {@code seed}. */
    static ByteBufferRegion random(long seed, int... chunkSizes) {
        Random rnd = new Random(seed);
        List<ByteBuffer> chunks = new ArrayList<>();
        for (int size : chunkSizes) {
            byte[] bytes = new byte[size];
            rnd.nextBytes(bytes);
            ByteBuffer b = ByteBuffer.allocateDirect(size);
            b.put(bytes).flip();
            chunks.add(b);
        }
        return new ByteBufferRegion(chunks);
    }

    static ByteBufferRegion zeros(int... chunkSizes) {
        List<ByteBuffer> chunks = new ArrayList<>();
        for (int size : chunkSizes) {
            chunks.add(ByteBuffer.allocateDirect(size));
        }
        return new ByteBufferRegion(chunks);
    }

    static byte[] bytes(MemoryRegion r, long offset, int length) {
        byte[] out = new byte[length];
        r.slice(offset, length).get(out);
        return out;
    }

    /** Serves like {@code inner} but sleeps before every slice: keeps a batch in flight long enough to kill it. */
    static MemoryRegion slow(MemoryRegion inner, long sleepMillis) {
        return new MemoryRegion() {
            @Override
            public RegionLayout layout() {
                return inner.layout();
            }

            @Override
            public ByteBuffer slice(long offset, int length) {
                try {
                    Thread.sleep(sleepMillis);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return inner.slice(offset, length);
            }
        };
    }
}
