// Two more decode GEMMs for 17..32 token rows, C[M, N] = A[M, K] . W[N, K]^T (CUDA_NOTES section 8). The host
// times them against gemm_skinny32 and gemm_split32 for every weight shape of the model when it loads it
// (CudaKernels.tuneDecode32) and keeps the fastest per shape.
//
// Measured before (H200, M = 32): gemm_skinny32 1.5-2.4 TB/s, gemm_split32 1.7-2.8 TB/s, against 2.8-3.3 TB/s for
// gemm_skinny16 at M = 16. Two reasons, one per kernel:
// - skinny32: a 16-row block reads ALL of A (2x the weight bytes at M = 32) from L2. The L2 -> SM path carries
//   weights + activations; skinny16 (1x) at 3.28 TB/s and skinny32 (2x) at 2.18 TB/s both move ~6.5 TB/s through it,
//   so that path is the limit: weight rate ~= 6.5 TB/s / (1 + A bytes per weight byte).
// - split32 (A 0.25x) is slower than that bound says: its weight stream stops at every staged segment of A (the
//   rolling loads of a segment's last burst are zeros, the next burst waits behind the staging barrier and an L2
//   round trip), each block is short (a few segments), and blocks of 8 warps x 128 B per lane.
//
// gemm_dual32 (A 1x): gemm_skinny's scheme with TWO 16-row mma tiles per warp (block = 32 weight rows, warps split
//   K): each A vector feeds both row tiles, so A traffic is 1x the weights, as skinny16's at M = 16. Loads are
//   rolling (slot u is refilled as soon as it is multiplied) with 2 slots of (4 weight + 4 activation) 16-byte
//   vectors per lane. All loads are volatile asm so that the compiler keeps them in issue order.
// gemm_pipe32 (A 0.25x): gemm_split's block (8 warps x 16 rows = 128 rows, one K slice per block of an S-block
//   cluster, fixed-order DSMEM reduction) with a CONTINUOUS weight stream: the slice's chunks are one flat loop,
//   UNROLL rolling slots of 2 weight vectors per lane that run across segment boundaries, and A double-buffered in
//   shared memory in segments of 8 chunks: segment g + 1 is copied (cp.async) while segment g is multiplied, one
//   barrier per segment, at which every warp still has UNROLL chunks of weights in flight.
//
// Fragment layout and k relabelling inside each 32-wide chunk: see gemm_skinny.cu. Edges: k >= K loads zero weights
// and zero activations; a weight row >= N reads row 0 and (dual) a token >= M reads token 0 (pipe: zeros): each
// only reaches its own output row / column, which is never stored. K a multiple of 8 (checked on the host).
#include "common.cuh"
#include <cooperative_groups.h>

// 16-byte activation load from global memory: read-only path, allocated in L1 (the blocks of an SM share A), volatile
// so that it stays in program order with the weight loads and the mma.
__device__ __forceinline__ uint4 d32_ld_act16(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// 16-byte shared-memory read (as gemm_split.cu's ld_shared16; own name: the .cu files are one translation unit).
__device__ __forceinline__ uint4 d32_ld_shared16(uint32_t addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr) : "memory");
    return v;
}

// ---- gemm_dual32 ------------------------------------------------------------------------------------------------

#define D32_ROWS 32     // weight rows per block: two m16 tiles per warp
#define D32_UNROLL 2    // rolling slots (chunks of 32 k) per lane
#define D32_LDR 33      // padded token row of the reduction buffer

// grid (ceil(N / 32)), block 32 * warps (warps split K in runs of D32_UNROLL chunks), dynamic shared memory
// warps * 32 * 33 * 4 bytes.
template <typename OutT, bool GATED = false, bool NORM = false>
__device__ __forceinline__ void gemm_dual32(const bf16* __restrict__ A, const bf16* __restrict__ W,
                                            OutT* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc,
                                            NormTail tail = NormTail{}) {
    constexpr int NT = 4;  // n-tiles of 8 tokens
    extern __shared__ float d32_red[];  // [warps][32 rows][D32_LDR]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int gid = lane >> 2, tid4 = lane & 3;
    const int row0 = blockIdx.x * D32_ROWS;
    // weight rows of this lane: row0 + gid + 8 r (r = 0..3): tile 0 = r 0, 1; tile 1 = r 2, 3. A row >= N reads
    // row 0 and a token >= M token 0 instead of zeros: each only reaches its own output row / column of the mma,
    // which is never stored (fewer registers and predicates than zero-filling).
    const bf16* w[4];
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int row = row0 + gid + 8 * r;
        w[r] = W + (size_t)(row < N ? row : 0) * ldw + 8 * tid4;
    }
    const bf16* a[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int m = 8 * j + gid;
        a[j] = A + (size_t)(m < M ? m : 0) * lda + 8 * tid4;
    }
    float acc[2][NT][4];
#pragma unroll
    for (int t = 0; t < 2; t++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[t][j][e] = 0.f;

    const uint4 zero = make_uint4(0, 0, 0, 0);
    const int chunks = (K + 31) >> 5;
    const int stride = warps * D32_UNROLL;
    uint4 wv[D32_UNROLL][4], av[D32_UNROLL][NT];
    auto loadW = [&](int u, int c) {  // chunk c's weights into slot u (zeros past K)
        const int kOff = c * 32;
        const bool okK = c < chunks && kOff + 8 * tid4 < K;
#pragma unroll
        for (int r = 0; r < 4; r++) wv[u][r] = okK ? ld_stream16(w[r] + kOff) : zero;
    };
    auto loadA = [&](int u, int c) {  // chunk c's activations into slot u (zeros past K)
        const int kOff = c * 32;
        const bool okK = c < chunks && kOff + 8 * tid4 < K;
#pragma unroll
        for (int j = 0; j < NT; j++) av[u][j] = okK ? d32_ld_act16(a[j] + kOff) : zero;
    };
    auto load = [&](int u, int c) { loadW(u, c); loadA(u, c); };
    const int c0 = warp * D32_UNROLL;
    // the first weights are in flight before the wait for the kernel before (programmatic launch); A after it
#pragma unroll
    for (int u = 0; u < D32_UNROLL; u++) loadW(u, c0 + u);
    pdl_enter();
#pragma unroll
    for (int u = 0; u < D32_UNROLL; u++) loadA(u, c0 + u);
#pragma unroll 1
    for (int c = c0; c < chunks; c += stride) {
#pragma unroll
        for (int u = 0; u < D32_UNROLL; u++) {
#pragma unroll
            for (int t = 0; t < 2; t++) {
                const uint4 lo = wv[u][2 * t], hi = wv[u][2 * t + 1];
                const uint32_t f0[4] = {lo.x, hi.x, lo.y, hi.y};
                const uint32_t f1[4] = {lo.z, hi.z, lo.w, hi.w};
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    const uint32_t b0[2] = {av[u][j].x, av[u][j].y};
                    const uint32_t b1[2] = {av[u][j].z, av[u][j].w};
                    mma_bf16(acc[t][j], f0, b0);
                    mma_bf16(acc[t][j], f1, b1);
                }
            }
            load(u, c + stride + u);
        }
    }

    // accumulator (row 16 t + gid / + 8, tokens 8 j + 2 tid4, +1) -> red[warp][row][token], then sum over warps in
    // warp order (deterministic)
    float* mine = d32_red + (size_t)warp * D32_ROWS * D32_LDR;
#pragma unroll
    for (int t = 0; t < 2; t++)
#pragma unroll
        for (int j = 0; j < NT; j++) {
            const int col = 8 * j + 2 * tid4, r = 16 * t + gid;
            mine[r * D32_LDR + col] = acc[t][j][0];
            mine[r * D32_LDR + col + 1] = acc[t][j][1];
            mine[(r + 8) * D32_LDR + col] = acc[t][j][2];
            mine[(r + 8) * D32_LDR + col + 1] = acc[t][j][3];
        }
    __syncthreads();
    if constexpr (GATED) {
        // two 16-row tiles of 8 gate over 8 up rows (GATE_GROUP, common.cuh): 16 features, C = act[M, N / 2]
        for (int i = threadIdx.x; i < (D32_ROWS / 2) * 32; i += blockDim.x) {
            const int m = i / (D32_ROWS / 2), f = i - m * (D32_ROWS / 2);
            const int r = (f / GATE_GROUP) * 2 * GATE_GROUP + f % GATE_GROUP;  // the gate row of feature f
            if (m < M && row0 + r < N) {
                float g = 0.f, u = 0.f;
                for (int q = 0; q < warps; q++) {
                    g += d32_red[((size_t)q * D32_ROWS + r) * D32_LDR + m];
                    u += d32_red[((size_t)q * D32_ROWS + r + GATE_GROUP) * D32_LDR + m];
                }
                store_gated(C + (size_t)m * ldc + row0 / 2 + f, g, u);
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < D32_ROWS * 32; i += blockDim.x) {
        const int m = i / D32_ROWS, r = i - m * D32_ROWS;  // consecutive threads: consecutive outputs of one token
        if (m < M && row0 + r < N) {
            float s = 0.f;
            for (int q = 0; q < warps; q++) s += d32_red[((size_t)q * D32_ROWS + r) * D32_LDR + m];
            store_out<OutT>(C + (size_t)m * ldc + row0 + r, s);
        }
    }
    if constexpr (NORM) norm_tail(tail, C, M, N);
}

#define DUAL32_KERNEL(OUT, NAME)                                                                                    \
    extern "C" __global__ void __launch_bounds__(256, 2) NAME(const bf16* __restrict__ A,                           \
            const bf16* __restrict__ W, OUT* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {       \
        gemm_dual32<OUT>(A, W, C, M, N, K, lda, ldw, ldc);                                                          \
    }
DUAL32_KERNEL(bf16, gemm_dual32_bf16)
DUAL32_KERNEL(float, gemm_dual32_f32)
// o_proj / down_proj with the following add + RMSNorm in the grid's last block (as gemm_skinny8_f32_norm)
extern "C" __global__ void __launch_bounds__(256, 2) gemm_dual32_f32_norm(const bf16* __restrict__ A,
        const bf16* __restrict__ W, float* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc,
        float* __restrict__ x, const bf16* __restrict__ normW, bf16* __restrict__ xn, int* __restrict__ counter,
        float eps) {
    gemm_dual32<float, false, true>(A, W, C, M, N, K, lda, ldw, ldc, NormTail{x, normW, xn, counter, eps});
}

// the gate|up GEMM with silu(gate) * up in its epilogue (as gemm_skinny*_silu): C = act [M, N / 2]
extern "C" __global__ void __launch_bounds__(256, 2) gemm_dual32_silu(const bf16* __restrict__ A,
        const bf16* __restrict__ W, bf16* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    gemm_dual32<bf16, true>(A, W, C, M, N, K, lda, ldw, ldc);
}

// ---- gemm_pipe32 ------------------------------------------------------------------------------------------------

#define P32_WARPS 8
#define P32_ROWS (16 * P32_WARPS)  // weight rows per block
#define P32_TOK 32                 // token rows staged (zeros past M)
#define P32_CH (P32_TOK * 32)      // bf16 per staged chunk (2 KB)
#define P32_LDP (P32_ROWS + 4)     // floats per token row of the partial tile
// dynamic shared memory: 2 segment buffers of 2 U chunks (U 4: 32 KB) >= the fp32 partial tile
// (32 x 132 x 4 = 16.9 KB)

// S blocks per cluster (K slices), U rolling weight slots (chunks) per lane, cps chunks per slice.
// grid (S, ceil(N / 128)), block 256, cluster (S, 1, 1), dynamic shared memory 2 x 2U x 2 KB.
template <int S, int U, typename OutT>
__device__ __forceinline__ void gemm_pipe32(const bf16* __restrict__ A, const bf16* __restrict__ W,
                                            OutT* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc,
                                            int cps) {
    constexpr int P32_SEG = 2 * U;  // chunks of 32 k per staged A segment (a burst of U never crosses one)
    constexpr int NT = P32_TOK / 8;
    constexpr int SEGB = P32_SEG * P32_CH;  // bf16 per segment buffer
    extern __shared__ __align__(16) unsigned char pipe_smem[];
    bf16* As = reinterpret_cast<bf16*>(pipe_smem);   // [2][P32_SEG][P32_TOK][32] during the main loop
    float* P = reinterpret_cast<float*>(pipe_smem);  // [P32_TOK][P32_LDP] after it

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gid = lane >> 2, tid4 = lane & 3;
    int rank = 0;
    if constexpr (S > 1) rank = (int)cooperative_groups::this_cluster().block_rank();
    const int row0 = blockIdx.y * P32_ROWS;
    // a weight row >= N reads row 0: it only reaches its own output row, which is never stored
    const int rLo = row0 + 16 * warp + gid;
    const bf16* wLo = W + (size_t)(rLo < N ? rLo : 0) * ldw + 8 * tid4;
    const bf16* wHi = W + (size_t)(rLo + 8 < N ? rLo + 8 : 0) * ldw + 8 * tid4;
    const int chunks = (K + 31) >> 5;
    const int cBeg = min(rank * cps, chunks), cEnd = min(cBeg + cps, chunks);
    const int n = cEnd - cBeg;                       // chunks of this slice (0: an empty slice)
    const int nseg = (n + P32_SEG - 1) / P32_SEG;

    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[j][e] = 0.f;

    const uint4 zero = make_uint4(0, 0, 0, 0);
    uint4 wl[U], wh[U];
    auto loadW = [&](int u, int c) {  // slice chunk c into slot u: 2 weight vectors per lane (zeros past n, K, N)
        const int kOff = (cBeg + c) * 32;
        const bool okK = c < n && kOff + 8 * tid4 < K;
        wl[u] = okK ? ld_stream16(wLo + kOff) : zero;
        wh[u] = okK ? ld_stream16(wHi + kOff) : zero;
    };
    // segment g of the slice -> buffer g & 1, every chunk of it (zeros past M, K and the slice); one commit group
    auto stage = [&](int g) {
        const int s0 = g * P32_SEG;
        bf16* dst = As + (g & 1) * SEGB;
#pragma unroll 1
        for (int v = tid; v < P32_SEG * P32_TOK * 4; v += P32_WARPS * 32) {
            const int c = v / (P32_TOK * 4), t = (v >> 2) & (P32_TOK - 1), q = v & 3;
            const int k = (cBeg + s0 + c) * 32 + 8 * q;
            const bool ok = t < M && s0 + c < n && k < K;
            cp_async16(dst + c * P32_CH + t * 32 + 8 * q, ok ? A + (size_t)t * lda + k : A, ok ? 16 : 0);
        }
        cp_async_commit();
    };

    // the first U chunks of weights are in flight before the first activations are asked for
#pragma unroll
    for (int u = 0; u < U; u++) loadW(u, u);
    pdl_enter();  // weights only before it: A is written by the kernel before (programmatic launch)
    if (nseg > 0) stage(0);
    const uint32_t aBase = (uint32_t)__cvta_generic_to_shared(As + gid * 32 + 8 * tid4);  // lane's A vector
#pragma unroll 1
    for (int it = 0; it < n; it += U) {
        const int itS = it % P32_SEG;
        const int g = it / P32_SEG;
        if (itS == 0) {
            // segment g: its copies (the only ones pending) done, visible to all; every warp is done with segment
            // g - 1, whose buffer now takes segment g + 1 (copied while g is multiplied)
            cp_async_wait<0>();
            __syncthreads();
            if (g + 1 < nseg) stage(g + 1);
        }
        const uint32_t aSeg = aBase + 2 * ((g & 1) * SEGB + itS * P32_CH);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const uint32_t f0[4] = {wl[u].x, wh[u].x, wl[u].y, wh[u].y};
            const uint32_t f1[4] = {wl[u].z, wh[u].z, wl[u].w, wh[u].w};
            const uint32_t a = aSeg + 2 * u * P32_CH;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const uint4 av = d32_ld_shared16(a + 2 * j * 8 * 32);  // token 8 j + gid
                const uint32_t b0[2] = {av.x, av.y}, b1[2] = {av.z, av.w};
                mma_bf16(acc[j], f0, b0);
                mma_bf16(acc[j], f1, b1);
            }
            loadW(u, it + U + u);  // across segment boundaries: the weight stream never stops
        }
    }

    // Partial tile: accumulator (row 16 warp + gid / + 8, tokens 8 j + 2 tid4, +1) -> P[token][row].
    cp_async_wait<0>();
    __syncthreads();  // every warp is done reading As, which P overwrites
    cluster_tile_store<S, P32_ROWS, P32_TOK, P32_LDP, P32_WARPS * 32>(acc, P, C, M, N, ldc, row0, rank);
}

// U = 4: 80 registers, no spills with __launch_bounds__(256, 3): 3 blocks (24 warps, 96 KB of weight loads) per SM.
// (U = 6 and 8 need more than the 128 registers of 2 blocks per SM and spill there: not built.)
#define PIPE32_KERNEL(S, U, MINB, OUT, NAME)                                                                        \
    extern "C" __global__ void __cluster_dims__(S, 1, 1) __launch_bounds__(P32_WARPS * 32, MINB)                 \
    NAME(const bf16* __restrict__ A, const bf16* __restrict__ W, OUT* __restrict__ C, int M, int N, int K, int lda,  \
         int ldw, int ldc, int cps) {                                                                               \
        gemm_pipe32<S, U, OUT>(A, W, C, M, N, K, lda, ldw, ldc, cps);                                               \
    }
#define PIPE32_KERNEL1(U, MINB, OUT, NAME)                                                                          \
    extern "C" __global__ void __launch_bounds__(P32_WARPS * 32, MINB)                                           \
    NAME(const bf16* __restrict__ A, const bf16* __restrict__ W, OUT* __restrict__ C, int M, int N, int K, int lda,  \
         int ldw, int ldc, int cps) {                                                                               \
        gemm_pipe32<1, U, OUT>(A, W, C, M, N, K, lda, ldw, ldc, cps);                                               \
    }
PIPE32_KERNEL1(4, 3, bf16, gemm_pipe32_u4_s1_bf16)
PIPE32_KERNEL(2, 4, 3, bf16, gemm_pipe32_u4_s2_bf16)
PIPE32_KERNEL(4, 4, 3, bf16, gemm_pipe32_u4_s4_bf16)
PIPE32_KERNEL(8, 4, 3, bf16, gemm_pipe32_u4_s8_bf16)
PIPE32_KERNEL1(4, 3, float, gemm_pipe32_u4_s1_f32)
PIPE32_KERNEL(2, 4, 3, float, gemm_pipe32_u4_s2_f32)
PIPE32_KERNEL(4, 4, 3, float, gemm_pipe32_u4_s4_f32)
PIPE32_KERNEL(8, 4, 3, float, gemm_pipe32_u4_s8_f32)
