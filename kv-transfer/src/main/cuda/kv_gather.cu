// KV migration on the device: ONE launch copies every run of a migration (a list of byte ranges, src -> dst).
// A run is cut into pieces of `piece_bytes`; thread blocks stride over the pieces of all runs, so a migration of
// a few large runs and one of many small runs both spread over every SM. The run table (CopyRuns.encoded) is
// 4n + 1 longs: src offsets[n] | dst offsets[n] | lengths[n] | piece starts[n + 1].
//
// 16-byte loads and stores when a piece is 16-byte aligned on both sides (KV blocks always are), four of them in
// flight per thread; a byte loop otherwise, so that any run is copied right.

#include <stdint.h>

extern "C" __global__ void __launch_bounds__(256)
kv_gather(const unsigned char* __restrict__ src, unsigned char* __restrict__ dst,
          const long long* __restrict__ runs, int n, long long piece_bytes, long long pieces) {
    const long long* src_off = runs;
    const long long* dst_off = runs + n;
    const long long* len = runs + 2 * (long long)n;
    const long long* first = runs + 3 * (long long)n;
    for (long long p = blockIdx.x; p < pieces; p += gridDim.x) {
        int lo = 0, hi = n - 1;  // the run r with first[r] <= p < first[r + 1]
        while (lo < hi) {
            int mid = (lo + hi + 1) >> 1;
            if (first[mid] <= p) lo = mid; else hi = mid - 1;
        }
        long long off = (p - first[lo]) * piece_bytes;
        long long bytes = len[lo] - off;
        if (bytes > piece_bytes) bytes = piece_bytes;
        const unsigned char* s = src + src_off[lo] + off;
        unsigned char* d = dst + dst_off[lo] + off;
        if ((((uintptr_t)s | (uintptr_t)d | (uintptr_t)bytes) & 15) == 0) {
            const uint4* s4 = reinterpret_cast<const uint4*>(s);
            uint4* d4 = reinterpret_cast<uint4*>(d);
            long long n4 = bytes >> 4;
            long long i = threadIdx.x;
            const long long step = blockDim.x;
            for (; i + 3 * step < n4; i += 4 * step) {
                uint4 a = __ldg(s4 + i);
                uint4 b = __ldg(s4 + i + step);
                uint4 c = __ldg(s4 + i + 2 * step);
                uint4 e = __ldg(s4 + i + 3 * step);
                d4[i] = a;
                d4[i + step] = b;
                d4[i + 2 * step] = c;
                d4[i + 3 * step] = e;
            }
            for (; i < n4; i += step) d4[i] = __ldg(s4 + i);
        } else {
            for (long long i = threadIdx.x; i < bytes; i += blockDim.x) d[i] = s[i];
        }
    }
}
