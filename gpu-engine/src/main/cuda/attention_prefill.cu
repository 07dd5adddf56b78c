// Causal GQA attention over the paged KV cache for prefill chunks, on the tensor cores (FlashAttention-2 style):
// mma.sync m16n8k16 bf16 with fp32 accumulation for S = Q K^T and for O += P V, the online softmax in registers.
//
// Work decomposition (the host's AttentionPlan builds the items): an item is up to FA_QT(HG) = 64 / HG query tokens
// of one slice; a block takes one item and HG query heads that share one KV head (HG = 4, 2 or 1: the largest of
// those dividing the GQA group), so every K/V tile it loads into shared memory serves 64 query rows:
//   warp w (of 4) -> head head0 + w % HG, tokens 16 (w / HG) .. +15 of the item (16 mma rows, one token each).
// HG = 4 (qwen3-8b: 32 q / 8 kv heads) puts the 4 heads of a KV head over the same 16 tokens: all warps share one
// causal limit, and a short slice tail (a 20-token chunk: 16 + 4 tokens) wastes fewer rows than 64-token blocks.
// 1-D grid: item = blockIdx.x / (heads / HG); the host orders the items by decreasing last position, so the blocks
// with the most key tiles start first (causal load balance).
//
// Per block: Q (64 rows) is staged through shared memory into registers (ldmatrix A fragments, 16 rows x hd per
// warp); K and V tiles of FA_KT = 64 key positions are copied from the PAGED pool with cp.async, one block-table
// lookup per key position (any block size), double-buffered (tile t + 1 loads while tile t computes; one barrier
// per tile). Rows are padded to hd + 8 bf16 so that ldmatrix is bank-conflict free. K [key][hd] is the mma's
// col-major B operand as stored (ldmatrix); V [key][hd] is row-major, so its B fragments come from ldmatrix.trans.
// Scores are scaled by scale * log2(e) and exponentiated with ex2; the causal mask is applied only on the tiles
// that cross the warp's first position, and a warp skips the tiles past its last position. P is rounded to bf16
// and reused in registers as the A operand of P V (the accumulator layout of S is the A layout of P). Each row's
// sum is kept per thread and reduced across its quad once at the end.
//
// Query token i of an item sits at position pos0 + i and attends keys 0 .. pos0 + i of its own sequence: earlier
// chunks and this chunk, written into the pool by qk_norm_rope_kv_write before this launch. Keys past the item's
// last position are zero-filled (never read from the pool), so padded rows and masked columns stay finite.
//
// Dynamic shared memory: 2 stages x (K + V) x FA_KT x (hd + 8) x 2 bytes = 69,632 (hd 128) / 36,864 (hd 64);
// CudaKernels#attentionPrefill computes the same. Decodes and short slices stay on paged_attention (attention.cu).
#include "common.cuh"

#define FA_KT 64        // keys per tile
#define FA_WARPS 4      // warps per block, 16 query rows each
#define FA_THREADS (32 * FA_WARPS)
#define FA_ROWS (16 * FA_WARPS)

__device__ __forceinline__ float fa_exp2(float x) {  // 2^x; ex2.approx(-inf) = +0
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

template <int HD>
__device__ __forceinline__ void flash_prefill(
        const bf16* __restrict__ q, const bf16* __restrict__ cache, const int* __restrict__ items,
        const int* __restrict__ blockTables, const int* __restrict__ geom, bf16* __restrict__ out, int heads,
        int kvHeads, int HG, int layer, int numLayers, int blockSize, float scaleLog2) {
    static_assert(HD % 16 == 0 && FA_ROWS == FA_KT, "Q is staged in one K stage");
    constexpr int LD = HD + 8;                // padded row (bf16): 16-byte aligned, ldmatrix conflict free
    constexpr int CPR = HD / 8;               // 16-byte chunks per row
    constexpr int STEP = FA_THREADS / CPR;    // rows one pass of the block copies
    constexpr int PASSES = FA_KT / STEP;      // passes per K (or V) tile
    constexpr int KD = HD / 16;               // k16 steps of S = Q K^T
    constexpr int ND = HD / 8;                // n8 tiles of O
    static_assert(FA_KT % STEP == 0 && ND % 2 == 0, "tile");

    extern __shared__ __align__(128) unsigned char fa_smem[];
    bf16 (*Ks)[FA_KT][LD] = reinterpret_cast<bf16 (*)[FA_KT][LD]>(fa_smem);
    bf16 (*Vs)[FA_KT][LD] = reinterpret_cast<bf16 (*)[FA_KT][LD]>(fa_smem + 2 * FA_KT * LD * sizeof(bf16));
    bf16 (*Qs)[LD] = Ks[1];  // free again before tile 1 is loaded into it

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int hgCount = heads / HG;
    const int itemIdx = blockIdx.x / hgCount;
    const int head0 = (blockIdx.x - itemIdx * hgCount) * HG;
    const int* it = items + 4 * itemIdx;
    const int slice = it[0], tok0 = it[1], nTok = it[2], pos0 = it[3];
    const int g = head0 / (heads / kvHeads);
    const int* table = blockTables + (size_t)slice * geom[1];
    const int kEnd = pos0 + nTok;  // exclusive: no row of the item sees a key at or past it
    const int nTiles = (kEnd + FA_KT - 1) / FA_KT;

    // Q rows: block row r = 16 w + i is token 16 (w / HG) + i of the item, head head0 + w % HG (zero past nTok)
#pragma unroll
    for (int i = 0; i < FA_ROWS * CPR / FA_THREADS; i++) {
        int c = tid + i * FA_THREADS;
        int r = c / CPR, col = (c % CPR) * 8;
        int w = r >> 4;
        int tok = (w / HG) * 16 + (r & 15);
        bool ok = tok < nTok;
        const bf16* src = ok ? q + ((size_t)(tok0 + tok) * heads + head0 + w % HG) * HD + col : q;
        cp_async16(&Qs[r][col], src, ok ? 16 : 0);
    }
    cp_async_commit();

    // K/V tile loader: this thread copies chunk lc of key rows lr, lr + STEP, ... of the tile
    const size_t blockElems = (size_t)numLayers * 2 * kvHeads * blockSize * HD;
    const bf16* kBase = cache + kv_index(0, layer, 0, g, numLayers, kvHeads, blockSize, HD);
    const bf16* vBase = cache + kv_index(0, layer, 1, g, numLayers, kvHeads, blockSize, HD);
    const int lr = tid / CPR, lc = (tid % CPR) * 8;
    auto loadKV = [&](int stage, int k0) {
        int bi[PASSES], sl[PASSES];
        {
            int p = k0 + lr;
            int b = p / blockSize;
            int s = p - b * blockSize;
#pragma unroll
            for (int i = 0; i < PASSES; i++) {
                bi[i] = b;
                sl[i] = s;
                s += STEP;
                if (s >= blockSize) {
                    if (blockSize >= STEP) {
                        s -= blockSize;
                        b++;
                    } else {
                        b += s / blockSize;
                        s %= blockSize;
                    }
                }
            }
        }
        int phys[PASSES];
#pragma unroll
        for (int i = 0; i < PASSES; i++) phys[i] = k0 + lr + i * STEP < kEnd ? __ldg(table + bi[i]) : 0;
#pragma unroll
        for (int i = 0; i < PASSES; i++) {
            bool ok = k0 + lr + i * STEP < kEnd;
            size_t off = (size_t)phys[i] * blockElems + (size_t)sl[i] * HD + lc;
            cp_async16(&Ks[stage][lr + i * STEP][lc], ok ? kBase + off : cache, ok ? 16 : 0);
            cp_async16(&Vs[stage][lr + i * STEP][lc], ok ? vBase + off : cache, ok ? 16 : 0);
        }
    };

    loadKV(0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();  // Q (and tile 0) landed for every thread

    uint32_t qf[KD][4];
#pragma unroll
    for (int kk = 0; kk < KD; kk++) ldmatrix_x4(qf[kk], &Qs[warp * 16 + (lane & 15)][kk * 16 + (lane >> 4) * 8]);

    const int gid = lane >> 2, tid4 = lane & 3;
    const int wTok0 = (warp / HG) * 16;               // this warp's first token in the item
    const bool wActive = wTok0 < nTok;
    const int wPosMin = pos0 + wTok0;                 // position of its row 0
    const int wPosMax = pos0 + min(wTok0 + 15, nTok - 1);  // of its last valid row
    const int rowPos0 = wPosMin + gid, rowPos1 = rowPos0 + 8;

    float o[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

    for (int t = 0; t < nTiles; t++) {
        const int k0 = t * FA_KT, st = t & 1;
        cp_async_wait<0>();  // tile t (this thread's copies)
        __syncthreads();     // everyone's copies of tile t; everyone done with tile t - 1 (and with Q at t = 0)
        if (t + 1 < nTiles) loadKV(st ^ 1, k0 + FA_KT);
        cp_async_commit();
        if (!wActive || k0 > wPosMax) continue;  // warp-uniform: every key of the tile is masked for this warp

        // S = Q K^T: 16 rows x 64 keys, 8 n8 tiles
        float s[8][4];
#pragma unroll
        for (int nb = 0; nb < 8; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
#pragma unroll
        for (int np = 0; np < 4; np++) {
#pragma unroll
            for (int kk = 0; kk < KD; kk++) {
                uint32_t b[4];
                ldmatrix_x4(b, &Ks[st][np * 16 + (lane >> 4) * 8 + (lane & 7)][kk * 16 + ((lane >> 3) & 1) * 8]);
                mma_bf16(s[2 * np], qf[kk], b);
                mma_bf16(s[2 * np + 1], qf[kk], b + 2);
            }
        }

        // scale into the log2 domain, causal mask where the tile crosses the warp's first row
        const bool needMask = k0 + FA_KT - 1 > wPosMin;
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < 8; nb++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[nb][e] * scaleLog2;
                if (needMask) {
                    int key = k0 + nb * 8 + 2 * tid4 + (e & 1);
                    if (key > ((e & 2) ? rowPos1 : rowPos0)) x = -INFINITY;
                }
                s[nb][e] = x;
            }
            mx0 = fmaxf(mx0, fmaxf(s[nb][0], s[nb][1]));
            mx1 = fmaxf(mx1, fmaxf(s[nb][2], s[nb][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
        const float a0 = fa_exp2(m0 - mu0), a1 = fa_exp2(m1 - mu1);  // 0 on the first tile (m = -inf)
        m0 = mn0;
        m1 = mn1;

        // P = 2^(x - m) -> bf16 A fragments: k16 step kc covers n8 tiles 2 kc (a0, a1) and 2 kc + 1 (a2, a3)
        uint32_t pa[4][4];
        float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
        for (int nb = 0; nb < 8; nb++) {
            float p0 = fa_exp2(s[nb][0] - mu0), p1 = fa_exp2(s[nb][1] - mu0);
            float p2 = fa_exp2(s[nb][2] - mu1), p3 = fa_exp2(s[nb][3] - mu1);
            rs0 += p0 + p1;
            rs1 += p2 + p3;
            pa[nb >> 1][(nb & 1) * 2] = pack2(p0, p1);
            pa[nb >> 1][(nb & 1) * 2 + 1] = pack2(p2, p3);
        }
        l0 = l0 * a0 + rs0;
        l1 = l1 * a1 + rs1;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            o[nd][0] *= a0;
            o[nd][1] *= a0;
            o[nd][2] *= a1;
            o[nd][3] *= a1;
        }

        // O += P V: V [key][hd] row-major -> B fragments by ldmatrix.trans (two n8 tiles of hd per x4)
#pragma unroll
        for (int kc = 0; kc < 4; kc++) {
#pragma unroll
            for (int ndp = 0; ndp < ND / 2; ndp++) {
                uint32_t b[4];
                ldmatrix_x4_trans(b, &Vs[st][kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8][ndp * 16 + (lane >> 4) * 8]);
                mma_bf16(o[2 * ndp], pa[kc], b);
                mma_bf16(o[2 * ndp + 1], pa[kc], b + 2);
            }
        }
    }
    cp_async_wait<0>();

    if (!wActive) return;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const int head = head0 + warp % HG;
    const int t0 = wTok0 + gid, t1 = t0 + 8;
    if (t0 < nTok) {  // a valid row saw key 0 at least: l0 >= 1
        const float inv = 1.f / l0;
        uint32_t* dst = reinterpret_cast<uint32_t*>(out + ((size_t)(tok0 + t0) * heads + head) * HD + 2 * tid4);
#pragma unroll
        for (int nd = 0; nd < ND; nd++) dst[nd * 4] = pack2(o[nd][0] * inv, o[nd][1] * inv);
    }
    if (t1 < nTok) {
        const float inv = 1.f / l1;
        uint32_t* dst = reinterpret_cast<uint32_t*>(out + ((size_t)(tok0 + t1) * heads + head) * HD + 2 * tid4);
#pragma unroll
        for (int nd = 0; nd < ND; nd++) dst[nd * 4] = pack2(o[nd][2] * inv, o[nd][3] * inv);
    }
}

// grid (items x heads / HG), block 128, dynamic shared memory 4 * 64 * (hd + 8) * 2 bytes; at most 168 registers
// (3 blocks of 4 warps per SM: 3 x 69,632 bytes of shared memory fit the 227 KB of an H100/H200 SM).
#define FA_KERNEL(HD)                                                                                                \
    extern "C" __global__ void __launch_bounds__(FA_THREADS, 3) attention_prefill_hd##HD(                            \
            const bf16* __restrict__ q, const bf16* __restrict__ cache, const int* __restrict__ items,              \
            const int* __restrict__ blockTables, const int* __restrict__ geom, bf16* __restrict__ out, int heads,  \
            int kvHeads, int HG, int layer, int numLayers, int blockSize, float scaleLog2) {                         \
        pdl_enter();                                                                                                 \
        flash_prefill<HD>(q, cache, items, blockTables, geom, out, heads, kvHeads, HG, layer, numLayers, blockSize, \
                          scaleLog2);                                                                                \
    }
FA_KERNEL(64)
FA_KERNEL(128)
