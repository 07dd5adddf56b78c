// C[M, N] = A[M, K] . W[N, K]^T: bf16 operands, fp32 accumulation on the tensor cores
// (mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32), C stored as bf16 or fp32.
//
// W is a Hugging Face linear weight [out, in], row-major: exactly the "col" B operand of the mma, so no transpose.
// Two tile shapes of one template, a STAGES-deep cp.async pipeline through padded shared memory (rows of 40 bf16 =
// 80 bytes: ldmatrix reads are bank-conflict free), dynamic shared memory:
//   64 x 64 x 32, 4 warps (2 x 2, warp tile 32 x 32 = 2 x 4 mma tiles), 3 stages (30 KB): small M or N
//   128 x 128 x 32, 8 warps (2 x 4, warp tile 64 x 32 = 4 x 4 mma tiles), 4 stages (80 KB): prefill. Twice the
//     math per byte of shared memory loaded (each A fragment feeds 4 mma, each B fragment 4) and half the global
//     traffic per FLOP of the 64 tile; the host picks it when it still gives every SM a block.
// Any M and N (edges zero-filled on load, guarded on store); K must be a multiple of 8 (16-byte rows), which the
// host checks; lda/ldw/ldc are row strides in elements (multiples of 8 for A and W).
//
// Decode-sized M goes to gemm_skinny.cu instead; prefill-sized products on an H100/H200 to gemm_wgmma.cu.
#include "common.cuh"

#define BK 32
#define LDS (BK + 8)

// Block tile BM x BN, warps WARPS_M x WARPS_N, each warp a (BM / WARPS_M) x (BN / WARPS_N) tile of m16n8 mma.
template <typename OutT, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
__device__ __forceinline__ void gemm_tile(const bf16* __restrict__ A, const bf16* __restrict__ W, OutT* __restrict__ C,
                                          int M, int N, int K, int lda, int ldw, int ldc) {
    constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile
    constexpr int MI = WM / 16, NI = WN / 8;             // mma tiles per warp
    constexpr int CHUNKS_A = BM * BK / 8 / THREADS;      // 16-byte cp.async per thread per stage
    constexpr int CHUNKS_B = BN * BK / 8 / THREADS;
    static_assert(NI % 2 == 0 && CHUNKS_A * THREADS == BM * BK / 8 && CHUNKS_B * THREADS == BN * BK / 8, "tile");
    extern __shared__ __align__(128) unsigned char gemm_smem[];
    bf16 (*As)[BM][LDS] = reinterpret_cast<bf16 (*)[BM][LDS]>(gemm_smem);
    bf16 (*Bs)[BN][LDS] = reinterpret_cast<bf16 (*)[BN][LDS]>(gemm_smem + (size_t)STAGES * BM * LDS * sizeof(bf16));
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;
    const int kTiles = (K + BK - 1) / BK;

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

    // rows x 4 chunks of 16 bytes per operand and stage
    auto load = [&](int stage, int kt) {
        const int k0 = kt * BK;
#pragma unroll
        for (int i = 0; i < CHUNKS_A; i++) {
            int c = tid + i * THREADS;
            int row = c >> 2, col = (c & 3) * 8;
            int gk = k0 + col, gr = bm + row;
            bool ok = gr < M && gk < K;
            cp_async16(&As[stage][row][col], ok ? A + (size_t)gr * lda + gk : A, ok ? 16 : 0);
        }
#pragma unroll
        for (int i = 0; i < CHUNKS_B; i++) {
            int c = tid + i * THREADS;
            int row = c >> 2, col = (c & 3) * 8;
            int gk = k0 + col, gn = bn + row;
            bool ok = gn < N && gk < K;
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
            uint32_t a[MI][4], b[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
                ldmatrix_x4(a[mi], &As[st][wm + mi * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
#pragma unroll
            for (int nj = 0; nj < NI / 2; nj++) {
                uint32_t r[4];
                ldmatrix_x4(r, &Bs[st][wn + nj * 16 + (lane >> 4) * 8 + (lane & 7)][kk + ((lane >> 3) & 1) * 8]);
                b[2 * nj][0] = r[0]; b[2 * nj][1] = r[1];
                b[2 * nj + 1][0] = r[2]; b[2 * nj + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int ni = 0; ni < NI; ni++) mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
    }
    cp_async_wait<0>();

#pragma unroll
    for (int mi = 0; mi < MI; mi++) {
#pragma unroll
        for (int ni = 0; ni < NI; ni++) {
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

// 64 x 64 tiles: grid (ceil(N / 64), ceil(M / 64)), block 128, dynamic shared memory 3 * 128 * 40 * 2 = 30,720.
extern "C" __global__ void __launch_bounds__(128) gemm_bf16_bf16(const bf16* __restrict__ A,
        const bf16* __restrict__ W, bf16* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    pdl_enter();
    gemm_tile<bf16, 64, 64, 2, 2, 3>(A, W, C, M, N, K, lda, ldw, ldc);
}

extern "C" __global__ void __launch_bounds__(128) gemm_bf16_f32(const bf16* __restrict__ A,
        const bf16* __restrict__ W, float* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    pdl_enter();
    gemm_tile<float, 64, 64, 2, 2, 3>(A, W, C, M, N, K, lda, ldw, ldc);
}

// 128 x 128 tiles: grid (ceil(N / 128), ceil(M / 128)), block 256, dynamic shared memory 4 * 256 * 40 * 2 = 81,920.
extern "C" __global__ void __launch_bounds__(256) gemm128_bf16_bf16(const bf16* __restrict__ A,
        const bf16* __restrict__ W, bf16* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    pdl_enter();
    gemm_tile<bf16, 128, 128, 2, 4, 4>(A, W, C, M, N, K, lda, ldw, ldc);
}

extern "C" __global__ void __launch_bounds__(256) gemm128_bf16_f32(const bf16* __restrict__ A,
        const bf16* __restrict__ W, float* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    pdl_enter();
    gemm_tile<float, 128, 128, 2, 4, 4>(A, W, C, M, N, K, lda, ldw, ldc);
}
