// C[M, N] = A[M, K] . W[N, K]^T: bf16 operands, fp32 accumulation on the tensor cores
// (mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32), C stored as bf16 or fp32.
//
// W is a Hugging Face linear weight [out, in], row-major: exactly the "col" B operand of the mma, so no transpose.
// Block tile 64 x 64 x 32, 4 warps (2 x 2, a 32 x 32 warp tile = 2 x 4 mma tiles), 3-stage cp.async pipeline
// through padded shared memory (rows of 40 bf16 = 80 bytes: ldmatrix reads are bank-conflict free).
// Any M and N (edges zero-filled on load, guarded on store); K must be a multiple of 8 (16-byte rows), which the
// host checks; lda/ldw/ldc are row strides in elements (multiples of 8 for A and W).
//
// This is the foundation's GEMM: the next step for prefill-sized M is a wgmma (sm_90a) kernel with TMA loads, and
// for decode-sized M a split-K / GEMV path; both keep this signature.
#include "common.cuh"

#define BM 64
#define BN 64
#define BK 32
#define STAGES 3
#define LDS (BK + 8)

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int srcBytes) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(srcBytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* smem) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}

template <typename OutT>
__device__ __forceinline__ void gemm_tile(const bf16* __restrict__ A, const bf16* __restrict__ W, OutT* __restrict__ C,
                                          int M, int N, int K, int lda, int ldw, int ldc) {
    __shared__ __align__(128) bf16 As[STAGES][BM][LDS];
    __shared__ __align__(128) bf16 Bs[STAGES][BN][LDS];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const int kTiles = (K + BK - 1) / BK;

    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

    // 64 rows x 4 chunks of 16 bytes per operand: 2 chunks of A and 2 of W per thread.
    auto load = [&](int stage, int kt) {
        const int k0 = kt * BK;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int c = tid + i * 128;
            int row = c >> 2, col = (c & 3) * 8;
            int gk = k0 + col;
            int gr = bm + row;
            bool ok = gr < M && gk < K;
            cp_async16(&As[stage][row][col], ok ? A + (size_t)gr * lda + gk : A, ok ? 16 : 0);
            int gn = bn + row;
            ok = gn < N && gk < K;
            cp_async16(&Bs[stage][row][col], ok ? W + (size_t)gn * ldw + gk : W, ok ? 16 : 0);
        }
    };

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < kTiles) load(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < kTiles; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // tile kt landed for every thread; everyone is done with the stage refilled below
        int next = kt + STAGES - 1;
        if (next < kTiles) load(next % STAGES, next);
        cp_async_commit();
        const int st = kt % STAGES;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
                ldmatrix_x4(a[mi], &As[st][wm + mi * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
#pragma unroll
            for (int nj = 0; nj < 2; nj++) {
                uint32_t r[4];
                ldmatrix_x4(r, &Bs[st][wn + nj * 16 + (lane >> 4) * 8 + (lane & 7)][kk + ((lane >> 3) & 1) * 8]);
                b[2 * nj][0] = r[0]; b[2 * nj][1] = r[1];
                b[2 * nj + 1][0] = r[2]; b[2 * nj + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
    }
    cp_async_wait<0>();

#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            int r0 = bm + wm + mi * 16 + (lane >> 2);
            int c0 = bn + wn + ni * 8 + (lane & 3) * 2;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = r0 + (e >> 1) * 8, c = c0 + (e & 1);
                if (r < M && c < N) store_out<OutT>(C + (size_t)r * ldc + c, acc[mi][ni][e]);
            }
        }
    }
}

// grid (ceil(N / 64), ceil(M / 64)), block 128, no dynamic shared memory.
extern "C" __global__ void __launch_bounds__(128) gemm_bf16_bf16(const bf16* __restrict__ A,
        const bf16* __restrict__ W, bf16* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    gemm_tile<bf16>(A, W, C, M, N, K, lda, ldw, ldc);
}

extern "C" __global__ void __launch_bounds__(128) gemm_bf16_f32(const bf16* __restrict__ A,
        const bf16* __restrict__ W, float* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    gemm_tile<float>(A, W, C, M, N, K, lda, ldw, ldc);
}
