package io.distserve.engine.kv;

import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A bounded log of cache changes (a key stored, a key removed), numbered from 0. Readers ask for the changes since
 * their cursor; a reader that fell behind the retained window gets a full snapshot instead. Not thread-safe: the
 * {@link BlockManager}'s monitor guards it.
 */
final class PrefixCacheEvents {

    private final long[] keys;
    private final boolean[] stored;
    private long next;

    PrefixCacheEvents(int capacity) {
        this.keys = new long[capacity];
        this.stored = new boolean[capacity];
    }

    void stored(long key) {
        append(key, true);
    }

    void removed(long key) {
        append(key, false);
    }

    private void append(long key, boolean isStore) {
        int slot = (int) (next % keys.length);
        keys[slot] = key;
        stored[slot] = isStore;
        next++;
    }

    /** The changes since {@code cursor}, or a snapshot of {@code current} when they are no longer all retained. */
    PrefixCacheDelta since(long cursor, Collection<Long> current) {
        long oldest = Math.max(0, next - keys.length);
        if (cursor < oldest || cursor > next) {
            long[] all = new long[current.size()];
            int i = 0;
            for (long k : current) {
                all[i++] = k;
            }
            return new PrefixCacheDelta(true, next, all, new long[0]);
        }
        // Net effect per key, so that the two lists can be applied in any order: the last event of a key wins.
        Map<Long, Boolean> last = new LinkedHashMap<>();
        for (long e = cursor; e < next; e++) {
            int slot = (int) (e % keys.length);
            last.put(keys[slot], stored[slot]);
        }
        long[] s = new long[last.size()];
        long[] r = new long[last.size()];
        int ns = 0;
        int nr = 0;
        for (Map.Entry<Long, Boolean> e : last.entrySet()) {
            if (e.getValue()) {
                s[ns++] = e.getKey();
            } else {
                r[nr++] = e.getKey();
            }
        }
        return new PrefixCacheDelta(false, next, Arrays.copyOf(s, ns), Arrays.copyOf(r, nr));
    }
}
