// Skinny GEMM for decode-sized batches: C[M, N] = A[M, K] . W[N, K]^T for M <= 32 token rows.
//
// Why: a decode step multiplies a handful of tokens by every weight matrix, so it is pure weight streaming
// (qwen3-8b: 15 GB of weights per step against a few KB of activations). The tiled GEMM (gemm.cu) gives one
// 64-row block per 64 outputs and reads K 32 at a time through shared memory: at M = 1 that is 64..384 blocks for
// the layer GEMMs, a few KB in flight per SM, ~1.2 TB/s. Here every SM streams weights with 16-byte loads, several
// in flight per thread, the weights are read once whatever M is, and the tokens ride along in registers.
//
// How: the product runs on the tensor cores "transposed": C^T = W . A^T with mma.m16n8k16, the 16 rows of the mma
// being 16 weight rows (outputs) and its 8 columns 8 tokens (NT tiles of 8 cover M <= 8 NT). The dot product over
// K does not care in which order the k's are summed, as long as W and A use the same order, so each lane loads
// whole 16-byte vectors and we relabel k inside each 32-wide chunk: lane (gid, tid4) holds
//     W[row0 + gid][k0 + 8 tid4 .. +7], W[row0 + gid + 8][same k]     (two uint4: the mma's A fragments)
//     A[token 8 j + gid][k0 + 8 tid4 .. +7]                            (one uint4 per n-tile: the B fragments)
// and words .x,.y feed one mma, .z,.w a second one: logical k (2 tid4, 2 tid4 + 1, 2 tid4 + 8, 2 tid4 + 9) of the
// first mma are physical k0 + 8 tid4 + (0, 1, 2, 3) for W and A alike (see mma_bf16 in common.cuh for the
// fragment layout). No shared memory on the load path, no barrier in the loop.
//
// Work split: block = WARPS warps on one tile of 16 weight rows (grid.x = ceil(N / 16)); the warps split K, each
// taking runs of UNROLL consecutive 32-wide chunks (a 256-byte run of every one of its 16 rows per iteration,
// 2 UNROLL 16-byte weight loads in flight per lane). The per-warp partial sums meet in shared memory and the block
// writes its 16 x M outputs; the order of that sum is fixed, so results are deterministic.
// Gated variant (gemm_skinny*_silu): the block's 16 rows are 8 gate and 8 up rows of the interleaved gate|up weight,
// and it stores silu(gate) * up for its 8 features instead of the 16 sums (CUDA_NOTES section 13).
// Edges: rows >= N and tokens >= M load zeros and are not stored; K must be a multiple of 8 (checked on the
// host), so a 16-byte vector is either wholly inside K or wholly outside.
#include "common.cuh"

#define SK_ROWS 16
#define SK_CHUNK 32
#define SK_UNROLL 4

template <int NT, typename OutT, bool GATED = false, bool NORM = false>
__device__ __forceinline__ void gemm_skinny(const bf16* __restrict__ A, const bf16* __restrict__ W,
                                            OutT* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc,
                                            NormTail tail = NormTail{}) {
    constexpr int COLS = 8 * NT;      // tokens covered
    constexpr int LDR = COLS + 1;     // padded row of the reduction buffer (bank-conflict free reads)
    extern __shared__ float red[];    // [warps][SK_ROWS][LDR]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int gid = lane >> 2, tid4 = lane & 3;
    const int row0 = blockIdx.x * SK_ROWS;
    const bool okLo = row0 + gid < N, okHi = row0 + gid + 8 < N;
    const bf16* wLo = W + (size_t)(okLo ? row0 + gid : 0) * ldw + 8 * tid4;
    const bf16* wHi = W + (size_t)(okHi ? row0 + gid + 8 : 0) * ldw + 8 * tid4;
    const bf16* a[NT];
    bool okTok[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        int m = 8 * j + gid;
        okTok[j] = m < M;
        a[j] = A + (size_t)(okTok[j] ? m : 0) * lda + 8 * tid4;
    }

    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[j][e] = 0.f;

    const uint4 zero = make_uint4(0, 0, 0, 0);
    const int chunks = (K + SK_CHUNK - 1) / SK_CHUNK;
    // No L2 prefetch of the first run before the wait: measured on an H100 (2026-12-06), it slowed every launch
    // (gate|up at M 1 103.6 us instead of 71.3, the LM head 667 instead of 404), programmatic or not.
    pdl_enter();
    for (int c0 = warp * SK_UNROLL; c0 < chunks; c0 += warps * SK_UNROLL) {
        // every load of this run first (2 UNROLL weight vectors + NT UNROLL token vectors per lane) ...
        uint4 wl[SK_UNROLL], wh[SK_UNROLL], av[SK_UNROLL][NT];
#pragma unroll
        for (int u = 0; u < SK_UNROLL; u++) {
            const int kOff = (c0 + u) * SK_CHUNK;
            const bool okK = kOff + 8 * tid4 < K;
            wl[u] = okLo && okK ? ld_stream16(wLo + kOff) : zero;
            wh[u] = okHi && okK ? ld_stream16(wHi + kOff) : zero;
#pragma unroll
            for (int j = 0; j < NT; j++)
                av[u][j] = okTok[j] && okK ? __ldg(reinterpret_cast<const uint4*>(a[j] + kOff)) : zero;
        }
        // ... then the math: two mma per n-tile per chunk (words x,y then z,w).
#pragma unroll
        for (int u = 0; u < SK_UNROLL; u++) {
            const uint32_t f0[4] = {wl[u].x, wh[u].x, wl[u].y, wh[u].y};
            const uint32_t f1[4] = {wl[u].z, wh[u].z, wl[u].w, wh[u].w};
#pragma unroll
            for (int j = 0; j < NT; j++) {
                const uint32_t b0[2] = {av[u][j].x, av[u][j].y};
                const uint32_t b1[2] = {av[u][j].z, av[u][j].w};
                mma_bf16(acc[j], f0, b0);
                mma_bf16(acc[j], f1, b1);
            }
        }
    }

    // Accumulator (row gid / gid + 8, tokens 8 j + 2 tid4, +1) -> red[warp][row][token], then sum over warps.
    float* mine = red + (size_t)warp * SK_ROWS * LDR;
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int col = 8 * j + 2 * tid4;
        mine[gid * LDR + col] = acc[j][0];
        mine[gid * LDR + col + 1] = acc[j][1];
        mine[(gid + 8) * LDR + col] = acc[j][2];
        mine[(gid + 8) * LDR + col + 1] = acc[j][3];
    }
    __syncthreads();
    if constexpr (GATED) {
        // the tile is 8 gate rows over the same features' 8 up rows (GATE_GROUP, common.cuh): C = act[M, N / 2]
        for (int i = threadIdx.x; i < GATE_GROUP * COLS; i += blockDim.x) {
            const int m = i / GATE_GROUP, r = i - m * GATE_GROUP;
            if (m < M && row0 + r < N) {
                float g = 0.f, u = 0.f;
                for (int w = 0; w < warps; w++) {
                    g += red[((size_t)w * SK_ROWS + r) * LDR + m];
                    u += red[((size_t)w * SK_ROWS + r + GATE_GROUP) * LDR + m];
                }
                store_gated(C + (size_t)m * ldc + row0 / 2 + r, g, u);
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < SK_ROWS * COLS; i += blockDim.x) {
        const int m = i / SK_ROWS, r = i - m * SK_ROWS;  // consecutive threads: consecutive outputs of one token
        if (m < M && row0 + r < N) {
            float s = 0.f;
            for (int w = 0; w < warps; w++) s += red[((size_t)w * SK_ROWS + r) * LDR + m];
            store_out<OutT>(C + (size_t)m * ldc + row0 + r, s);
        }
    }
    if constexpr (NORM) norm_tail(tail, C, M, N);
}

// grid (ceil(N / 16)), block 32 * warps (<= 512), dynamic shared memory warps * 16 * (8 NT + 1) * 4 bytes.
// NT = 1, 2, 4: M <= 8, 16, 32.
#define SKINNY_KERNEL(NT, OUT, NAME)                                                                               \
    extern "C" __global__ void __launch_bounds__(512) NAME(const bf16* __restrict__ A, const bf16* __restrict__ W,  \
            OUT* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {                                 \
        gemm_skinny<NT, OUT>(A, W, C, M, N, K, lda, ldw, ldc);                                                     \
    }
SKINNY_KERNEL(1, bf16, gemm_skinny8_bf16)
SKINNY_KERNEL(2, bf16, gemm_skinny16_bf16)
SKINNY_KERNEL(4, bf16, gemm_skinny32_bf16)
SKINNY_KERNEL(1, float, gemm_skinny8_f32)
SKINNY_KERNEL(2, float, gemm_skinny16_f32)
SKINNY_KERNEL(4, float, gemm_skinny32_f32)

// The gate|up GEMM with the activation fused into its epilogue (decode steps): W is the interleaved gate|up weight
// (N = 2 inter rows), C = act [M, inter] (ldc = inter), act = silu_mul1 of the bf16-rounded gate and up sums.
#define SKINNY_SILU_KERNEL(NT, NAME)                                                                               \
    extern "C" __global__ void __launch_bounds__(512) NAME(const bf16* __restrict__ A, const bf16* __restrict__ W,  \
            bf16* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {                                \
        gemm_skinny<NT, bf16, true>(A, W, C, M, N, K, lda, ldw, ldc);                                             \
    }
SKINNY_SILU_KERNEL(1, gemm_skinny8_silu)
SKINNY_SILU_KERNEL(2, gemm_skinny16_silu)
SKINNY_SILU_KERNEL(4, gemm_skinny32_silu)

// o_proj / down_proj of a decode step with the add + RMSNorm that follows them in the grid's last block
// (norm_tail, common.cuh): C = delta [M, N] fp32 (ldc = N = hidden), then x += delta, xn = norm(x) * normW.
extern "C" __global__ void __launch_bounds__(512) gemm_skinny8_f32_norm(const bf16* __restrict__ A,
        const bf16* __restrict__ W, float* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc,
        float* __restrict__ x, const bf16* __restrict__ normW, bf16* __restrict__ xn, int* __restrict__ counter,
        float eps) {
    gemm_skinny<1, float, false, true>(A, W, C, M, N, K, lda, ldw, ldc, NormTail{x, normW, xn, counter, eps});
}
