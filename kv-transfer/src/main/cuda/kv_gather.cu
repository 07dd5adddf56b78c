// KV migration on the device: ONE launch copies every run of a migration (a list of byte ranges, src -> dst).
// A run is cut into pieces of `piece_bytes` (CopyRuns: 64 KiB, two rounds of 256 threads x 8 x 16 bytes). Each thread block
// takes an equal, contiguous share of all pieces: it finds its first run once (binary search) and then walks
// forward, so the share streams through consecutive memory and no piece pays for a search. The run table
// (CopyRuns.encoded) is 4n + 1 longs: src offsets[n] | dst offsets[n] | lengths[n] | piece starts[n + 1].
//
// 16-byte loads and stores when a piece is 16-byte aligned on both sides (KV blocks always are), eight
// of them in flight per thread; a byte loop otherwise, so that any run is copied right.

#include <stdint.h>

#define KV_GATHER_THREADS 256
#define KV_GATHER_DEPTH 8

template <bool STREAMING>
__device__ __forceinline__ uint4 load16(const uint4* p) {
    if (STREAMING) return __ldcs(p);
    return __ldg(p);
}

template <bool STREAMING>
__device__ __forceinline__ void store16(uint4* p, uint4 v) {
    if (STREAMING) __stcs(p, v); else *p = v;
}

template <bool STREAMING>
__device__ __forceinline__ void gather(const unsigned char* __restrict__ src, unsigned char* __restrict__ dst,
                                       const long long* __restrict__ runs, int n, long long piece_bytes,
                                       long long pieces) {
    const long long* src_off = runs;
    const long long* dst_off = runs + n;
    const long long* len = runs + 2 * (long long)n;
    const long long* first = runs + 3 * (long long)n;
    const long long share = (pieces + gridDim.x - 1) / gridDim.x;
    long long p = (long long)blockIdx.x * share;
    long long end = p + share < pieces ? p + share : pieces;
    if (p >= end) return;
    int r = 0, hi = n - 1;  // the run r with first[r] <= p < first[r + 1]
    while (r < hi) {
        int mid = (r + hi + 1) >> 1;
        if (first[mid] <= p) r = mid; else hi = mid - 1;
    }
    for (; p < end; ++p) {
        while (first[r + 1] <= p) ++r;
        long long off = (p - first[r]) * piece_bytes;
        long long bytes = len[r] - off;
        if (bytes > piece_bytes) bytes = piece_bytes;
        const unsigned char* s = src + src_off[r] + off;
        unsigned char* d = dst + dst_off[r] + off;
        if ((((uintptr_t)s | (uintptr_t)d | (uintptr_t)bytes) & 15) == 0) {
            const uint4* s4 = reinterpret_cast<const uint4*>(s);
            uint4* d4 = reinterpret_cast<uint4*>(d);
            const long long n4 = bytes >> 4;
            long long i = threadIdx.x;
            for (; i + (KV_GATHER_DEPTH - 1) * KV_GATHER_THREADS < n4; i += KV_GATHER_DEPTH * KV_GATHER_THREADS) {
                uint4 v[KV_GATHER_DEPTH];
#pragma unroll
                for (int k = 0; k < KV_GATHER_DEPTH; ++k) v[k] = load16<STREAMING>(s4 + i + k * KV_GATHER_THREADS);
#pragma unroll
                for (int k = 0; k < KV_GATHER_DEPTH; ++k) store16<STREAMING>(d4 + i + k * KV_GATHER_THREADS, v[k]);
            }
            for (; i < n4; i += KV_GATHER_THREADS) store16<STREAMING>(d4 + i, load16<STREAMING>(s4 + i));
        } else {
            for (long long i = threadIdx.x; i < bytes; i += KV_GATHER_THREADS) d[i] = s[i];
        }
    }
}

// The migration's gather: read-only-path loads, default stores. On the H200 it beat streaming (evict-first) hints
// by 2-7% (GatherSweep, kv-transfer/BENCHMARKS.md). Bounded to 4 blocks per SM (the launch's grid): 64 registers
// and no spills (unbounded, ptxas chose 40 registers and spilled 20 bytes).
extern "C" __global__ void __launch_bounds__(KV_GATHER_THREADS, 4)
kv_gather(const unsigned char* __restrict__ src, unsigned char* __restrict__ dst,
          const long long* __restrict__ runs, int n, long long piece_bytes, long long pieces) {
    gather<false>(src, dst, runs, n, piece_bytes, pieces);
}

// The same with streaming (evict-first) loads and stores, for the benchmark's comparison (GatherSweep).
extern "C" __global__ void __launch_bounds__(KV_GATHER_THREADS)
kv_gather_streaming(const unsigned char* __restrict__ src, unsigned char* __restrict__ dst,
                    const long long* __restrict__ runs, int n, long long piece_bytes, long long pieces) {
    gather<true>(src, dst, runs, n, piece_bytes, pieces);
}
