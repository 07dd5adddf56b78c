// Decode GEMM for 17..32 token rows: C[M, N] = A[M, K] . W[N, K]^T, warps split the ROWS, a thread-block cluster
// splits K, the activations are staged once per block in shared memory.
//
// Why: gemm_skinny.cu gives each block 16 weight rows and lets its warps split K, so every block reads ALL of A
// (M x K bf16, 256 KB at M = 32, K = 4096) through L1/L2 for 16 rows of weights: at M = 32 the activation traffic
// into the SMs is twice the weight traffic, and L2 -> SM bandwidth, not HBM, sets the pace (1.1-1.9 TB/s measured
// for the layer GEMMs). Here a block owns 128 weight rows (8 warps x 16) and one K slice; it copies the slice's
// A (32 tokens x up to 512 k, 32 KB) into shared memory once, and all 8 warps read their tensor-core B fragments
// from there: A traffic per weight byte drops from M / 16 to M / 128 (2x -> 0.25x at M = 32).
//
// Weight loads and math are those of gemm_skinny.cu (C^T = W . A^T on mma.m16n8k16, lane (gid, tid4) loads
// W[row gid / gid + 8][k0 + 8 tid4 .. +7] as two 16-byte vectors straight from global memory, k relabelled inside
// each 32-wide chunk so that one 16-byte A vector per n-tile is the matching B fragment pair); UNROLL 4 chunks =
// 8 weight vectors in flight per lane, no barrier inside a segment. A lives in shared memory as
// [chunk][token][32 k] (64 bytes per token and chunk): the 8 lanes of a quarter-warp read 2 tokens x 64 bytes,
// 128 consecutive bytes, so the 16-byte reads are bank-conflict free.
//
// K split: the S blocks of a tile (blockIdx.x = rank 0..S-1, one cluster of S blocks along x, S = 1, 2, 4, 8) take
// consecutive slices of cps 32-wide chunks each; a slice longer than 16 chunks is staged 16 chunks (one segment)
// at a time, the first weight vectors of each segment loaded before its barrier. Reduction: each block writes its
// 128 x 32 fp32 partial tile into its own shared memory (over the A buffer), the cluster synchronizes, and rank r
// sums rows [r 128/S, (r+1) 128/S) over the S blocks' tiles through distributed shared memory IN RANK ORDER 0..S-1,
// then stores them: deterministic, no workspace, no atomics, nothing in global memory but C (CUDA-graph safe).
// S = 1 is the same code without a cluster (the host's fallback should a cluster launch be refused).
//
// Edges: rows >= N and k >= K load zero weights and zero activations (cp.async zero-fill), tokens >= M are zero in
// shared memory and never stored; K must be a multiple of 8 (checked on the host), so a 16-byte vector is wholly
// inside or outside K. A slice may be empty (S x cps > chunks): that block contributes zeros.
#include "common.cuh"
#include <cooperative_groups.h>

#define SP_WARPS 8
#define SP_ROWS (16 * SP_WARPS)  // weight rows per block
#define SP_SEG 16                // 32-wide chunks per staged segment of A (512 k)
#define SP_UNROLL 4              // chunks per weight-load burst (2 x 4 16-byte vectors per lane)
#define SP_LDP (SP_ROWS + 4)     // floats per token row of the partial tile (bank-conflict free writes)

// 16-byte shared-memory read; volatile (and ordered with the mma and weight-load asm) so that ptxas keeps only the
// fragments in use live.
__device__ __forceinline__ uint4 ld_shared16(uint32_t addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr) : "memory");
    return v;
}

// TOK token rows (a multiple of 8: TOK / 8 n-tiles of the mma), S blocks per cluster (K slices), cps chunks of 32 k
// per slice. Dynamic shared memory: max(min(SP_SEG, roundup(cps, SP_UNROLL)) x TOK x 64, TOK x SP_LDP x 4) bytes.
template <int TOK, int S, typename OutT>
__device__ __forceinline__ void gemm_split(const bf16* __restrict__ A, const bf16* __restrict__ W,
                                           OutT* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc,
                                           int cps) {
    constexpr int NT = TOK / 8;
    constexpr int CH = TOK * 32;  // bf16 per staged chunk
    extern __shared__ __align__(16) unsigned char split_smem[];
    bf16* As = reinterpret_cast<bf16*>(split_smem);    // [chunk][TOK][32] during the main loop
    float* P = reinterpret_cast<float*>(split_smem);   // [TOK][SP_LDP] partial tile, after it

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gid = lane >> 2, tid4 = lane & 3;
    int rank = 0;
    if constexpr (S > 1) rank = (int)cooperative_groups::this_cluster().block_rank();
    const int row0 = blockIdx.y * SP_ROWS;
    const int rLo = row0 + 16 * warp + gid;
    const bool okLo = rLo < N, okHi = rLo + 8 < N;
    const bf16* wLo = W + (size_t)(okLo ? rLo : 0) * ldw + 8 * tid4;
    const bf16* wHi = W + (size_t)(okHi ? rLo + 8 : 0) * ldw + 8 * tid4;
    const int chunks = (K + 31) >> 5;
    const int cBeg = min(rank * cps, chunks), cEnd = min(cBeg + cps, chunks);

    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[j][e] = 0.f;

    const uint32_t aBase = (uint32_t)__cvta_generic_to_shared(As + gid * 32 + 8 * tid4);  // lane's A vector
    const uint4 zero = make_uint4(0, 0, 0, 0);
    uint4 wl[SP_UNROLL], wh[SP_UNROLL];
    for (int s0 = cBeg; s0 < cEnd; s0 += SP_SEG) {
        const int nc = min(SP_SEG, cEnd - s0);                         // chunks of this segment
        const int ncU = (nc + SP_UNROLL - 1) / SP_UNROLL * SP_UNROLL;  // chunks the warps read (zeros past nc)
        // chunk it + u of the segment into slot u: 2 weight vectors per lane (zeros past nc, K or N)
        auto loadW = [&](int u, int it) {
            const int kOff = (s0 + it + u) * 32;
            const bool okK = it + u < nc && kOff + 8 * tid4 < K;
            wl[u] = okLo && okK ? ld_stream16(wLo + kOff) : zero;
            wh[u] = okHi && okK ? ld_stream16(wHi + kOff) : zero;
        };
#pragma unroll
        for (int u = 0; u < SP_UNROLL; u++) loadW(u, 0);  // in flight across the staging barrier
        pdl_enter();  // weights only before it: A is written by the kernel before (programmatic launch)
        if (s0 != cBeg) __syncthreads();  // every warp is done reading the previous segment
        // A[0 .. TOK)[32 s0 .. 32 (s0 + ncU)) -> As[chunk][token][32]; zero past M, K and the segment
        for (int v = tid; v < ncU * TOK * 4; v += SP_WARPS * 32) {
            const int c = v / (TOK * 4), t = (v >> 2) & (TOK - 1), q = v & 3;
            const int k = (s0 + c) * 32 + 8 * q;
            const bool ok = t < M && c < nc && k < K;
            cp_async16(As + c * CH + t * 32 + 8 * q, ok ? A + (size_t)t * lda + k : A, ok ? 16 : 0);
        }
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
        // Rolling loads: as soon as chunk it + u is multiplied, slot u is refilled with chunk it + UNROLL + u, so
        // each lane keeps 2 UNROLL weight vectors in flight all along the segment (the asm statements are volatile:
        // the compiler keeps this order). The activation vectors come from shared memory two n-tiles at a time.
        for (int it = 0; it < nc; it += SP_UNROLL) {
#pragma unroll
            for (int u = 0; u < SP_UNROLL; u++) {
                const uint32_t f0[4] = {wl[u].x, wh[u].x, wl[u].y, wh[u].y};
                const uint32_t f1[4] = {wl[u].z, wh[u].z, wl[u].w, wh[u].w};
                const uint32_t a = aBase + 2 * (it + u) * CH;
#pragma unroll
                for (int j = 0; j < NT; j += 2) {
                    const uint4 av0 = ld_shared16(a + 2 * j * 8 * 32);  // token 8 j + gid
                    const uint4 av1 = ld_shared16(a + 2 * (j + 1) * 8 * 32);
                    const uint32_t b00[2] = {av0.x, av0.y}, b01[2] = {av0.z, av0.w};
                    const uint32_t b10[2] = {av1.x, av1.y}, b11[2] = {av1.z, av1.w};
                    mma_bf16(acc[j], f0, b00);
                    mma_bf16(acc[j], f1, b01);
                    mma_bf16(acc[j + 1], f0, b10);
                    mma_bf16(acc[j + 1], f1, b11);
                }
                loadW(u, it + SP_UNROLL);
            }
        }
    }

    // Partial tile: accumulator (row 16 warp + gid / + 8, tokens 8 j + 2 tid4, +1) -> P[token][row].
    pdl_enter();  // an empty slice never entered the loop
    __syncthreads();  // every warp is done reading As, which P overwrites
    cluster_tile_store<S, SP_ROWS, TOK, SP_LDP, SP_WARPS * 32>(acc, P, C, M, N, ldc, row0, rank);
}

// grid (S, ceil(N / 128)), block 256, cluster (S, 1, 1), dynamic shared memory as gemm_split says. ptxas gives these
// 80 registers without a cap (with __launch_bounds__(256, 3), the same 80, it spilled 8-24 bytes), which is three
// blocks per SM: 3 x 32 KB of weight loads in flight per SM.
#define SPLIT_KERNEL(TOK, S, OUT, NAME)                                                                             \
    extern "C" __global__ void __cluster_dims__(S, 1, 1) __launch_bounds__(SP_WARPS * 32)                        \
    NAME(const bf16* __restrict__ A, const bf16* __restrict__ W, OUT* __restrict__ C, int M, int N, int K, int lda,  \
         int ldw, int ldc, int cps) {                                                                               \
        gemm_split<TOK, S, OUT>(A, W, C, M, N, K, lda, ldw, ldc, cps);                                              \
    }
// S = 1: no cluster attribute (the path that needs no cluster launch).
#define SPLIT_KERNEL1(TOK, OUT, NAME)                                                                               \
    extern "C" __global__ void __launch_bounds__(SP_WARPS * 32)                                                  \
    NAME(const bf16* __restrict__ A, const bf16* __restrict__ W, OUT* __restrict__ C, int M, int N, int K, int lda,  \
         int ldw, int ldc, int cps) {                                                                               \
        gemm_split<TOK, 1, OUT>(A, W, C, M, N, K, lda, ldw, ldc, cps);                                              \
    }
SPLIT_KERNEL1(32, bf16, gemm_split32_s1_bf16)
SPLIT_KERNEL(32, 2, bf16, gemm_split32_s2_bf16)
SPLIT_KERNEL(32, 4, bf16, gemm_split32_s4_bf16)
SPLIT_KERNEL(32, 8, bf16, gemm_split32_s8_bf16)
SPLIT_KERNEL1(32, float, gemm_split32_s1_f32)
SPLIT_KERNEL(32, 2, float, gemm_split32_s2_f32)
SPLIT_KERNEL(32, 4, float, gemm_split32_s4_f32)
SPLIT_KERNEL(32, 8, float, gemm_split32_s8_f32)
