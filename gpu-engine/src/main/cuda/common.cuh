// Shared helpers of the DistServe kernels: bf16 storage, fp32 math, 16-byte vector access, warp reductions.
// Every kernel of the fatbin includes this; kernels are extern "C" so that the host finds them by plain name.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>
#include <cooperative_groups.h>

typedef __nv_bfloat16 bf16;

// bf16 -> fp32 is exact: the bf16 bits are the top half of the float.
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

// 8 bf16 (one 16-byte vector, element 0 in the low half of .x) -> 8 floats.
__device__ __forceinline__ void unpack8(uint4 v, float f[8]) {
    f[0] = bf16_lo(v.x); f[1] = bf16_hi(v.x);
    f[2] = bf16_lo(v.y); f[3] = bf16_hi(v.y);
    f[4] = bf16_lo(v.z); f[5] = bf16_hi(v.z);
    f[6] = bf16_lo(v.w); f[7] = bf16_hi(v.w);
}

// Round to nearest even, as the host's FloatCodec.floatToBf16 does.
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&p);
}

__device__ __forceinline__ uint4 pack8(const float f[8]) {
    return make_uint4(pack2(f[0], f[1]), pack2(f[2], f[3]), pack2(f[4], f[5]), pack2(f[6], f[7]));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.f;
        s = warp_sum(s);
        if (lane == 0) total = s;
    }
    __syncthreads();
    return total;
}

// D += A . B on the tensor cores, one m16n8k16 tile (bf16 operands, fp32 accumulators). Fragment layout (PTX ISA,
// "mma.m16n8k16"), for lane = 4 * gid + tid4:  a0 (row gid, k 2tid4..+1), a1 (row gid+8, same k), a2 (row gid,
// k 2tid4+8..+9), a3 (row gid+8, same k); b0 (k 2tid4..+1, col gid), b1 (k 2tid4+8..+9, col gid); c0,c1 (row gid,
// cols 2tid4, 2tid4+1), c2,c3 (row gid+8, same cols).
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// cp.async (16 bytes, L2 only; srcBytes 0 zero-fills the destination without reading); commit closes a group,
// wait<N> waits until at most N groups are pending. And ldmatrix, shared by the tensor-core kernels (gemm.cu,
// attention_prefill.cu, gemm_split.cu). ldmatrix_x4: lanes 8i..8i+7 give the row addresses of 8x8 matrix i; lane t
// receives (row t / 4, cols 2 (t % 4) .. +1) of each matrix (with .trans: (rows 2 (t % 4) .. +1, col t / 4), i.e. of
// the transposed matrix).
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
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* smem) {
    uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}

// Weights are read exactly once per step: don't allocate them in L1 (that is where the activations, read by every
// block, stay), and ask L2 for the 256-byte run each warp reads per row.
__device__ __forceinline__ uint4 ld_stream16(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// Programmatic dependent launch (sm_90; CudaBackend's decode graphs launch their kernels so, ProgrammaticLaunch):
// such a kernel may start while the kernel before it in the stream still runs. pdl_enter() first waits until that
// kernel has completed and its writes are visible (griddepcontrol.wait), then lets the next kernel's blocks start
// (launch_dependents; they in turn wait in their own pdl_enter). So before pdl_enter() a kernel may read only
// what no kernel of the step writes (weights), and write nothing. Both are no-ops for a plain launch, and calling
// it twice costs nothing.
__device__ __forceinline__ void pdl_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The gated MLP's activation of one element, silu(g) * u, for g and u as rounded to bf16 (the gate|up GEMM's
// output): silu_mul (elementwise.cu) and the gate|up GEMMs' fused epilogue (gemm_skinny.cu, gemm_decode32.cu) both
// call this, so that both paths give the same bits.
__device__ __forceinline__ float silu_mul1(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// The gate|up weight is stored with gate and up rows interleaved in groups of GATE_GROUP (CudaWeights): output rows
// 16 i .. 16 i + 7 are gate rows 8 i .. 8 i + 7 and rows 16 i + 8 .. 16 i + 15 the up rows of the same features, so
// one 16-row mma tile holds both halves of 8 activations (rows gid and gid + 8 of the fragment), and a row of the
// GEMM's output is [gate 8 | up 8] per 16-byte pair of vectors.
#define GATE_GROUP 8

// Stores one fp32 result as the output type (bf16: round to nearest even).
template <typename T> __device__ __forceinline__ void store_out(T* p, float v);
template <> __device__ __forceinline__ void store_out<float>(float* p, float v) { *p = v; }
template <> __device__ __forceinline__ void store_out<bf16>(bf16* p, float v) { *p = __float2bfloat16_rn(v); }

// act = silu_mul1(bf16(g), bf16(u)) rounded to bf16: what the gate|up GEMM storing bf16 followed by silu_mul gives.
__device__ __forceinline__ void store_gated(bf16* p, float g, float u) {
    *p = __float2bfloat16_rn(silu_mul1(__bfloat162float(__float2bfloat16_rn(g)),
                                       __bfloat162float(__float2bfloat16_rn(u))));
}

// One row of the residual stream through add + RMSNorm, by the whole block (blockDim a multiple of 32):
//   v = x (+ delta); when writeBack, x = v; out = bf16(w * (v * 1/sqrt(mean(v^2) + eps)))
// Every load of the row (x, delta, the weight: at most MAXV float4 per thread, hidden <= blockDim x 4 x MAXV) is
// issued at once into registers, then one block reduction, then the stores: at decode sizes the row is a chain of
// memory round trips, and this makes it one. delta is read through L2 (__ldcg): in a GEMM's norm tail (norm_tail)
// other blocks of the same grid wrote it.
template <int MAXV>
__device__ __forceinline__ void add_rmsnorm_row(float* __restrict__ x, const float* __restrict__ delta,
                                                const bf16* __restrict__ w, bf16* __restrict__ out, int hidden,
                                                float eps, bool writeBack) {
    float4* xr = reinterpret_cast<float4*>(x);
    const float4* dr = reinterpret_cast<const float4*>(delta);
    const uint2* wv = reinterpret_cast<const uint2*>(w);  // 4 bf16 per float4 of x
    const int vecs = hidden / 4;
    float4 v[MAXV];
    uint2 g[MAXV];
#pragma unroll
    for (int j = 0; j < MAXV; j++) {
        int i = threadIdx.x + j * blockDim.x;
        if (i < vecs) {
            v[j] = xr[i];
            g[j] = wv[i];
        }
    }
    if (dr) {
#pragma unroll
        for (int j = 0; j < MAXV; j++) {
            int i = threadIdx.x + j * blockDim.x;
            if (i < vecs) {
                float4 d = __ldcg(dr + i);
                v[j].x += d.x; v[j].y += d.y; v[j].z += d.z; v[j].w += d.w;
                if (writeBack) xr[i] = v[j];
            }
        }
    }
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < MAXV; j++) {
        if (threadIdx.x + j * blockDim.x < vecs) {
            ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
        }
    }
    ss = block_sum(ss);
    float inv = 1.0f / sqrtf(ss / hidden + eps);
    uint2* o = reinterpret_cast<uint2*>(out);
#pragma unroll
    for (int j = 0; j < MAXV; j++) {
        int i = threadIdx.x + j * blockDim.x;
        if (i < vecs) {
            o[i] = make_uint2(pack2(bf16_lo(g[j].x) * (v[j].x * inv), bf16_hi(g[j].x) * (v[j].y * inv)),
                              pack2(bf16_lo(g[j].y) * (v[j].z * inv), bf16_hi(g[j].y) * (v[j].w * inv)));
        }
    }
}

// The norm that follows o_proj and down_proj, as the tail of their decode GEMM (one launch instead of two): after
// every block of the grid stored its part of delta = C [M, N] (fp32, row stride N = hidden), the last block to get
// here (a counter in device memory, reset by that block for the next launch or graph replay) runs
// add_rmsnorm_row over the M rows: x += delta (written back), out = the next GEMM's normalized input.
struct NormTail {
    float* x;
    const bf16* w;
    bf16* out;
    int* counter;
    float eps;
};
#define NORM_TAIL_VECS 8  // hidden <= blockDim x 32 (the host checks before it fuses)
__device__ __forceinline__ void norm_tail(const NormTail& t, const float* C, int M, int N) {
    __shared__ int lastBlock;
    __threadfence();  // this block's part of C visible device-wide before it counts itself done
    __syncthreads();
    if (threadIdx.x == 0) {
        lastBlock = atomicAdd(t.counter, 1) == (int)(gridDim.x * gridDim.y * gridDim.z) - 1;
        if (lastBlock) *t.counter = 0;
    }
    __syncthreads();
    if (!lastBlock) return;
    __threadfence();
    for (int m = 0; m < M; m++) {
        add_rmsnorm_row<NORM_TAIL_VECS>(t.x + (size_t)m * N, C + (size_t)m * N, t.w, t.out + (size_t)m * N, N,
                                        t.eps, true);
    }
}

// Element index of (block, layer, k=0|v=1, kvHead, slot 0, dim 0) in the block-major paged KV pool
// [block][layer][k,v][kvHead][slot][headDim] (io.distserve.engine.kv.KvCacheLayout#elementIndex).
__device__ __forceinline__ size_t kv_index(int block, int layer, int kv, int head, int numLayers, int numKvHeads,
                                           int blockSize, int headDim) {
    return ((((size_t)block * numLayers + layer) * 2 + kv) * numKvHeads + head) * (size_t)blockSize * headDim;
}

// The epilogue of the cluster GEMMs (gemm_split.cu, gemm_decode32.cu's pipe): the block writes its fp32 partial tile
// (accumulator of rows 16 warp + gid / + 8 and tokens 8 j + 2 tid4 / + 1) to P[token][row], LDP floats per token;
// then rank r of the S blocks of the cluster sums its ROWS / S rows over the S tiles in rank order (deterministic)
// and stores them; THREADS is the block size. With S == 1 the block stores its own tile. The caller ends every read
// of the shared memory that P reuses with a barrier before this call.
template <int S, int ROWS, int TOK, int LDP, int THREADS, typename OutT>
__device__ __forceinline__ void cluster_tile_store(const float (&acc)[TOK / 8][4], float* P, OutT* __restrict__ C,
                                                   int M, int N, int ldc, int row0, int rank) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gid = lane >> 2, tid4 = lane & 3;
#pragma unroll
    for (int j = 0; j < TOK / 8; j++) {
        const int col = 8 * j + 2 * tid4, r = 16 * warp + gid;
        P[col * LDP + r] = acc[j][0];
        P[(col + 1) * LDP + r] = acc[j][1];
        P[col * LDP + r + 8] = acc[j][2];
        P[(col + 1) * LDP + r + 8] = acc[j][3];
    }
    constexpr int RPR = ROWS / S;  // rows this rank reduces and stores
    if constexpr (S > 1) {
        cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
        cluster.sync();  // every block's partial tile written and visible to the cluster
        const float* part[S];
#pragma unroll
        for (int q = 0; q < S; q++) part[q] = cluster.map_shared_rank(P, q);
        for (int i = tid; i < RPR * TOK; i += THREADS) {
            const int m = i / RPR, r = rank * RPR + i % RPR;  // consecutive threads: consecutive rows of one token
            if (m < M && row0 + r < N) {
                float s = 0.f;
#pragma unroll
                for (int q = 0; q < S; q++) s += part[q][m * LDP + r];  // fixed order: deterministic
                store_out<OutT>(C + (size_t)m * ldc + row0 + r, s);
            }
        }
        cluster.sync();  // no block leaves while another still reads its shared memory
    } else {
        __syncthreads();
        for (int i = tid; i < RPR * TOK; i += THREADS) {
            const int m = i / RPR, r = i % RPR;
            if (m < M && row0 + r < N) store_out<OutT>(C + (size_t)m * ldc + row0 + r, P[m * LDP + r]);
        }
    }
}

