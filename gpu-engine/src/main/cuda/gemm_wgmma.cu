// C[M, N] = A[M, K] . W[N, K]^T on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a only): bf16 operands from
// shared memory, fp32 accumulators in registers, C stored as bf16 or fp32. Same contract as gemm.cu (A activations
// and W = a Hugging Face weight [out, in], both K-major, "TN"; any M and N; K, lda, ldw multiples of 8; ldc any).
//
// Block tile 128 x 256 x 64, 384 threads = 3 warpgroups, warp-specialized:
//   warpgroup 0 (producer): copies the A tile (128 x 64) and the W tile (256 x 64) of each k-step into one of 4
//     shared-memory stages with 16-byte cp.async (Ampere-style: JCuda 12.6 has no cuTensorMapEncodeTiled, so no
//     TMA), written straight into the 128-byte-swizzle layout that wgmma reads (row r of a tile at r * 128 bytes,
//     16-byte chunk c stored at chunk c ^ (r % 8); 8-row atoms of 1,024 bytes, stage bases 1,024-aligned). Rows past
//     M or N and k past K are zero-filled (cp.async src-size 0). Each producer thread ends a stage with
//     cp.async.mbarrier.arrive.noinc on the stage's "full" mbarrier (128 arrivals), which fires when its copies land.
//   warpgroups 1 and 2 (consumers): rows 0-63 and 64-127 of the tile, all 256 columns: per k-step, wait "full",
//     fence.proxy.async (the copies were generic-proxy writes, wgmma reads through the async proxy), wgmma.fence,
//     4 x wgmma m64n256k16 (descriptors advanced 32 bytes per k16 inside the swizzled 128-byte rows), commit,
//     wait_group 1 (the previous k-step's wgmmas are done), then lane 0 of each warp arrives on that stage's
//     "empty" mbarrier (8 arrivals) so the producer may refill it.
//   Epilogue: straight from the accumulators (fragment: row 16 * warp + lane / 4 (+ 8), column 8 * j + 2 * (lane % 4)
//     (+ 1)), pairs stored as one bf16x2 / float2 when aligned, masked at M and N.
// Grid: 1-D, M tiles fastest (the blocks in flight share W tiles: each weight byte comes from DRAM about once).
// 196,608 + 1,024 bytes of dynamic shared memory (one block per SM). Without sm_90a (the compute_90 PTX of the
// fatbin) the kernel body is a trap: the host only launches it on compute capability 9.0.
#include "common.cuh"

namespace wgmma_gemm {

constexpr int kTileM = 128;
constexpr int kTileN = 256;
constexpr int kTileK = 64;                                 // 64 bf16 = one 128-byte swizzle row
constexpr int kStages = 4;
constexpr int kThreads = 384;
constexpr int kABytes = kTileM * kTileK * 2;               // 16 KB
constexpr int kBBytes = kTileN * kTileK * 2;               // 32 KB
constexpr int kStageBytes = kABytes + kBBytes;             // 48 KB
constexpr int kSmemBytes = kStages * kStageBytes + 1024;   // + slack to align stage 0 to 1,024 bytes
// A wait that spins this many times has deadlocked (a bug): trap instead of hanging the process.
constexpr unsigned kSpinLimit = 1u << 26;

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    for (unsigned spins = 0;; spins++) {
        uint32_t done;
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
        if (done) return;
        if (spins >= kSpinLimit) __trap();
    }
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// The mbarrier gets one arrival once every cp.async this thread issued so far has completed.
__device__ __forceinline__ void cp_async_arrive(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];\n" ::"r"(bar) : "memory");
}

__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, int srcBytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(srcBytes) : "memory");
}

__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Shared-memory matrix descriptor of a K-major operand in the 128-byte swizzle layout: start address >> 4
// (bits 0-13), leading byte offset 16 >> 4 (unused for swizzled K-major), stride byte offset 1,024 >> 4 (bits
// 32-45: the next 8-row atom), base offset 0 (atoms 1,024-aligned), layout 1 = SWIZZLE_128B (bits 62-63).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

// d[64 x 256] += A[64 x 16] . B[256 x 16]^T, both from shared memory (K-major, no transpose), fp32 accumulators.
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
                 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
                 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
                 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
                 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                   "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                   "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                   "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                   "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                   "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                   "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                   "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                   "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                   "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                   "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db), "r"(1));
}

// Keeps the compiler from moving accumulator reads or writes across the asm barriers around it.
__device__ __forceinline__ void fence_acc(float (&d)[128]) {
#pragma unroll
    for (int i = 0; i < 128; i++) asm volatile("" : "+f"(d[i])::"memory");
}

template <typename OutT> struct Pair;
template <> struct Pair<float> {
    static __device__ __forceinline__ void store(float* p, float a, float b) {
        *reinterpret_cast<float2*>(p) = make_float2(a, b);
    }
};
template <> struct Pair<bf16> {
    static __device__ __forceinline__ void store(bf16* p, float a, float b) {
        *reinterpret_cast<uint32_t*>(p) = pack2(a, b);
    }
};

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

template <typename OutT>
__device__ __forceinline__ void gemm_tile(const bf16* __restrict__ A, const bf16* __restrict__ W,
                                          OutT* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    __shared__ __align__(8) uint64_t full[kStages];
    __shared__ __align__(8) uint64_t empty[kStages];
    extern __shared__ __align__(16) unsigned char wgmma_smem[];
    const uint32_t base = (smem_addr(wgmma_smem) + 1023u) & ~1023u;
    const int tid = threadIdx.x;
    const int wg = tid >> 7;
    const int mTiles = (M + kTileM - 1) / kTileM;
    const int bm = (int)(blockIdx.x % mTiles) * kTileM;
    const int bn = (int)(blockIdx.x / mTiles) * kTileN;
    const int kTiles = (K + kTileK - 1) / kTileK;

    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < kStages; s++) {
            mbar_init(smem_addr(&full[s]), 128);  // one cp.async arrival per producer thread
            mbar_init(smem_addr(&empty[s]), 8);   // lane 0 of each consumer warp
        }
    }
    __syncthreads();

    if (wg == 0) {
        // ---- producer: rows r0 + 16 i of both tiles, 16-byte chunk ch of each 128-byte row ----
        const int r0 = tid >> 3, ch = tid & 7;
        const uint32_t sOff = (uint32_t)(r0 * 128 + ((ch ^ (r0 & 7)) << 4));  // (r0 + 16 i) % 8 == r0 % 8
        for (int t = 0; t < kTiles; t++) {
            const int s = t % kStages;
            mbar_wait(smem_addr(&empty[s]), ((t / kStages) & 1) ^ 1);  // first round: passes at once
            const uint32_t sA = base + s * kStageBytes + sOff;
            const uint32_t sB = sA + kABytes;
            const int gk = t * kTileK + ch * 8;
            const bool kOk = gk < K;
#pragma unroll
            for (int i = 0; i < kTileM / 16; i++) {
                const int row = bm + r0 + 16 * i;
                const bool ok = kOk && row < M;
                cp_async_16(sA + i * 2048, ok ? A + (size_t)row * lda + gk : A, ok ? 16 : 0);
            }
#pragma unroll
            for (int i = 0; i < kTileN / 16; i++) {
                const int row = bn + r0 + 16 * i;
                const bool ok = kOk && row < N;
                cp_async_16(sB + i * 2048, ok ? W + (size_t)row * ldw + gk : W, ok ? 16 : 0);
            }
            cp_async_arrive(smem_addr(&full[s]));
        }
        asm volatile("cp.async.wait_all;\n" ::: "memory");
    } else {
        // ---- consumers: warpgroup cw owns tile rows 64 cw .. 64 cw + 63 ----
        const int cw = wg - 1;
        const int lane = tid & 31;
        float d[128];
#pragma unroll
        for (int i = 0; i < 128; i++) d[i] = 0.f;
        for (int t = 0; t < kTiles; t++) {
            const int s = t % kStages;
            mbar_wait(smem_addr(&full[s]), (t / kStages) & 1);
            fence_proxy_async();
            const uint32_t aBase = base + s * kStageBytes + cw * (64 * 128);
            const uint32_t bBase = base + s * kStageBytes + kABytes;
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < kTileK / 16; kk++) {
                wgmma_m64n256k16(d, desc_sw128(aBase + kk * 32), desc_sw128(bBase + kk * 32));
            }
            wgmma_commit();
            wgmma_wait<1>();  // the previous k-step's wgmmas have read their stage
            if (t > 0 && lane == 0) mbar_arrive(smem_addr(&empty[(t - 1) % kStages]));
        }
        wgmma_wait<0>();
        fence_acc(d);

        // ---- epilogue ----
        const int warp = (tid >> 5) & 3;
        const int row0 = bm + cw * 64 + warp * 16 + (lane >> 2);
        const int col0 = bn + (lane & 3) * 2;
        const bool vec = (ldc & 1) == 0 && (reinterpret_cast<uintptr_t>(C) & (2 * sizeof(OutT) - 1)) == 0;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = row0 + 8 * h;
            if (r >= M) continue;
            OutT* out = C + (size_t)r * ldc;
#pragma unroll
            for (int j = 0; j < 32; j++) {
                const int c = col0 + 8 * j;
                const float v0 = d[4 * j + 2 * h], v1 = d[4 * j + 2 * h + 1];
                if (vec && c + 1 < N) {
                    Pair<OutT>::store(out + c, v0, v1);
                } else {
                    if (c < N) store_out<OutT>(out + c, v0);
                    if (c + 1 < N) store_out<OutT>(out + c + 1, v1);
                }
            }
        }
    }
#else
    __trap();  // compute_90 PTX (JIT on another architecture): never launched, the host checks for 9.0
#endif
}

}  // namespace wgmma_gemm

// grid (ceil(M / 128) * ceil(N / 256)), block 384, dynamic shared memory wgmma_gemm::kSmemBytes = 197,632.
extern "C" __global__ void __launch_bounds__(384, 1) gemm_wgmma_bf16_bf16(const bf16* __restrict__ A,
        const bf16* __restrict__ W, bf16* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    pdl_enter();
    wgmma_gemm::gemm_tile<bf16>(A, W, C, M, N, K, lda, ldw, ldc);
}

extern "C" __global__ void __launch_bounds__(384, 1) gemm_wgmma_bf16_f32(const bf16* __restrict__ A,
        const bf16* __restrict__ W, float* __restrict__ C, int M, int N, int K, int lda, int ldw, int ldc) {
    pdl_enter();
    wgmma_gemm::gemm_tile<float>(A, W, C, M, N, K, lda, ldw, ldc);
}
