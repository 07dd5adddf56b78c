// Causal grouped-query attention over the paged KV cache, for prefill chunks and decodes in one launch.
//
// Work items (one per grid.x, built on the host): {slice, first token in the batch, tokens (<= QT), first position}.
// A thread block takes one item, HG query heads of one KV head (grid.y = heads / HG) and one key split
// (grid.z): rows r = (token r / HG, head r % HG), R = QT * HG <= 16. It walks the split's key positions in tiles
// of KT = 32, loading K and V of its KV head from the paged cache (block table lookup per position, 16-byte
// loads) into shared memory once for all its rows (GQA reuse), and keeps a flash-style online softmax per row.
// Each row at position p attends to positions 0..p of its own sequence (keys of earlier steps and of this step,
// written by qk_norm_rope_kv_write before this launch).
//
// Split-KV ("flash-decoding"): when the grid is too small to fill the GPU (decode of few sequences with long
// contexts) the host sets splits > 1; each split writes its unnormalized output and (max, sum) to a workspace, and
// the last split of an (item, head group) to finish merges them (splitDone counts the finished splits per block
// tile, and that block resets its counter to 0 for the next launch or graph replay): no second kernel. The merge
// sums the splits in order 0, 1, ... whichever block does it, so the result does not depend on timing. With
// splits == 1 the block writes the final bf16 output itself. The split length comes from device memory (geom): a
// decode graph fixes the number of splits (grid.z) when it is captured and each replay covers its context with
// that many splits or fewer; splits past the context only count themselves done.
//
// Dynamic shared memory (bytes): 4 * (2 * R * hd + R * KT + 3 * RMAX + KT * (hd / 2 + 1) + KT * hd / 2); the host
// computes the same (CudaKernels.attentionSharedBytes) and raises the kernel's limit past 48 KB when needed.
//
// Scores and P.V run on the CUDA cores in fp32. Since the tensor-core prefill kernel (attention_prefill.cu) the
// backend sends only decodes and short slices (< 16 tokens) here; slices of 16 tokens or more go there
// (AttentionPlan#forStep), and a step with both launches both on disjoint output rows, without split-KV here.
#include "common.cuh"

#define KT 32
#define RMAX 16

extern "C" __global__ void __launch_bounds__(128) paged_attention(
        const bf16* __restrict__ q,            // [n, heads, hd]
        const bf16* __restrict__ cache,        // block-major pool
        const int* __restrict__ items,         // [grid.x][4]
        const int* __restrict__ blockTables,   // [slices][tableStride]
        const int* __restrict__ geom,          // {splitLen, tableStride}: in device memory, so that a captured
                                               // decode graph replays with this step's values (CudaBackend)
        bf16* __restrict__ out,                // [n, heads, hd] (splits == 1)
        float* __restrict__ partO,             // [splits][n * heads][hd] (splits > 1)
        float* __restrict__ partML,            // [splits][n * heads][2]
        int* __restrict__ splitDone,           // [grid.x * grid.y], zero between launches (splits > 1)
        int n, int heads, int kvHeads, int hd, int HG, int QT, int layer, int numLayers, int blockSize,
        float scale) {
    pdl_enter();
    extern __shared__ __align__(16) unsigned char smem[];
    const int R = QT * HG;
    const int hw = hd / 2;           // a head row in 32-bit words
    const int kStride = hw + 1;      // odd: lanes reading different keys hit different banks
    float* Qs = reinterpret_cast<float*>(smem);             // [R][hd], pre-scaled
    float* Os = Qs + R * hd;                                 // [R][hd] unnormalized output
    float* Ps = Os + R * hd;                                 // [R][KT] probabilities of this tile
    float* Ms = Ps + R * KT;                                 // [RMAX] running max
    float* Ls = Ms + RMAX;                                   // [RMAX] running sum
    float* As = Ls + RMAX;                                   // [RMAX] rescale factor of this tile
    uint32_t* Ks = reinterpret_cast<uint32_t*>(As + RMAX);   // [KT][kStride] (16-byte aligned)
    uint32_t* Vs = Ks + KT * kStride;                        // [KT][hw]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nWarps = blockDim.x >> 5;
    const int* item = items + blockIdx.x * 4;
    const int slice = item[0], tok0 = item[1], nTok = item[2], pos0 = item[3];
    const int head0 = blockIdx.y * HG;
    const int g = head0 / (heads / kvHeads);
    const int split = blockIdx.z, splits = gridDim.z;
    const int splitLen = geom[0], tableStride = geom[1];
    const int* table = blockTables + (size_t)slice * tableStride;
    const int kBegin = split * splitLen;
    const int kEnd = min(pos0 + nTok, kBegin + splitLen);  // exclusive
    const int rows = nTok * HG;                             // valid rows: 0 .. rows-1
    const size_t nRows = (size_t)n * heads;

    if (kBegin < kEnd) {  // else no key of this split is visible to any row: nothing to write
    for (int i = tid; i < R * hd; i += blockDim.x) {
        int r = i / hd, d = i - r * hd;
        float v = 0.f;
        if (r < rows) v = __bfloat162float(q[((size_t)(tok0 + r / HG) * heads + head0 + r % HG) * hd + d]) * scale;
        Qs[i] = v;
        Os[i] = 0.f;
    }
    for (int r = tid; r < R; r += blockDim.x) {
        Ms[r] = -INFINITY;
        Ls[r] = 0.f;
    }

    const size_t kBase = kv_index(0, layer, 0, g, numLayers, kvHeads, blockSize, hd);
    const size_t vBase = kv_index(0, layer, 1, g, numLayers, kvHeads, blockSize, hd);
    const size_t blockElems = (size_t)numLayers * 2 * kvHeads * blockSize * hd;
    const int vecs = hd / 8;  // 16-byte vectors per key row

    for (int k0 = kBegin; k0 < kEnd; k0 += KT) {
        __syncthreads();  // previous tile fully consumed
        for (int i = tid; i < KT * vecs; i += blockDim.x) {
            int j = i / vecs, c = i - j * vecs;
            int p = k0 + j;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (p < kEnd) {
                int blk = table[p / blockSize];
                size_t off = (size_t)blk * blockElems + (size_t)(p % blockSize) * hd + c * 8;
                kv = *reinterpret_cast<const uint4*>(cache + kBase + off);
                vv = *reinterpret_cast<const uint4*>(cache + vBase + off);
            }
            uint32_t* kd = Ks + j * kStride + c * 4;  // row stride is odd: 4-byte stores
            kd[0] = kv.x; kd[1] = kv.y; kd[2] = kv.z; kd[3] = kv.w;
            *reinterpret_cast<uint4*>(Vs + j * hw + c * 4) = vv;
        }
        __syncthreads();

        // scores and online-softmax statistics: one warp per row, lane j = key k0 + j
        for (int r = warp; r < rows; r += nWarps) {
            int p = k0 + lane;
            int rowPos = pos0 + r / HG;
            float s = -INFINITY;
            if (p < kEnd && p <= rowPos) {
                const float* qr = Qs + r * hd;
                const uint32_t* kr = Ks + lane * kStride;
                float acc = 0.f;
                for (int w = 0; w < hw; w++) {
                    uint32_t kw = kr[w];
                    acc = fmaf(qr[2 * w], bf16_lo(kw), acc);
                    acc = fmaf(qr[2 * w + 1], bf16_hi(kw), acc);
                }
                s = acc;
            }
            float mOld = Ms[r];
            float mNew = fmaxf(mOld, warp_max(s));
            float e = mNew == -INFINITY ? 0.f : __expf(s - mNew);
            float sum = warp_sum(e);
            Ps[r * KT + lane] = e;
            if (lane == 0) {
                float alpha = mNew == -INFINITY ? 1.f : __expf(mOld - mNew);
                As[r] = alpha;
                Ms[r] = mNew;
                Ls[r] = Ls[r] * alpha + sum;
            }
        }
        __syncthreads();

        // O = O * alpha + P . V
        int tileKeys = min(KT, kEnd - k0);
        for (int i = tid; i < rows * hd; i += blockDim.x) {
            int r = i / hd, d = i - r * hd;
            const float* pr = Ps + r * KT;
            const bf16* vcol = reinterpret_cast<const bf16*>(Vs) + d;
            float acc = 0.f;
            for (int j = 0; j < tileKeys; j++) acc = fmaf(pr[j], __bfloat162float(vcol[j * hd]), acc);
            Os[i] = Os[i] * As[r] + acc;
        }
    }
    __syncthreads();

    for (int i = tid; i < rows * hd; i += blockDim.x) {
        int r = i / hd, d = i - r * hd;
        size_t gr = (size_t)(tok0 + r / HG) * heads + head0 + r % HG;
        if (splits == 1) {
            out[gr * hd + d] = __float2bfloat16_rn(Os[i] / Ls[r]);
        } else {
            partO[((size_t)split * nRows + gr) * hd + d] = Os[i];
            if (d == 0) {
                partML[((size_t)split * nRows + gr) * 2] = Ms[r];
                partML[((size_t)split * nRows + gr) * 2 + 1] = Ls[r];
            }
        }
    }
    }  // kBegin < kEnd
    if (splits == 1) return;

    // Split-KV: the last of the splits of this (item, head group) to get here merges them.
    __shared__ int lastSplit;
    __threadfence();  // this block's partials visible device-wide before it counts itself done
    __syncthreads();
    if (tid == 0) {
        int* done = splitDone + blockIdx.x * gridDim.y + blockIdx.y;
        lastSplit = atomicAdd(done, 1) == splits - 1;
        if (lastSplit) *done = 0;  // every split has counted: ready for the next launch
    }
    __syncthreads();
    if (!lastSplit) return;
    __threadfence();
    // splits z with z * splitLen >= the item's end hold no key for any row (never written this launch)
    const int live = min(splits, (pos0 + nTok + splitLen - 1) / splitLen);
    // per row: M = max_z m_z and the denominator sum_z l_z e^(m_z - M) (Ms, Ls reused: this block's own stats
    // are in the workspace now)
    __syncthreads();
    for (int r = tid; r < rows; r += blockDim.x) {
        size_t gr = (size_t)(tok0 + r / HG) * heads + head0 + r % HG;
        float mMax = -INFINITY;
        for (int z = 0; z < live; z++) mMax = fmaxf(mMax, __ldcg(partML + ((size_t)z * nRows + gr) * 2));
        float denom = 0.f;
        for (int z = 0; z < live; z++) {
            float m = __ldcg(partML + ((size_t)z * nRows + gr) * 2);
            if (m != -INFINITY) denom += __ldcg(partML + ((size_t)z * nRows + gr) * 2 + 1) * __expf(m - mMax);
        }
        Ms[r] = mMax;
        Ls[r] = denom;
    }
    __syncthreads();
    for (int i = tid; i < rows * hd; i += blockDim.x) {
        int r = i / hd, d = i - r * hd;
        size_t gr = (size_t)(tok0 + r / HG) * heads + head0 + r % HG;
        float acc = 0.f;
        for (int z = 0; z < live; z++) {
            float m = __ldcg(partML + ((size_t)z * nRows + gr) * 2);
            if (m != -INFINITY) acc += __ldcg(partO + ((size_t)z * nRows + gr) * hd + d) * __expf(m - Ms[r]);
        }
        out[gr * hd + d] = __float2bfloat16_rn(acc / Ls[r]);
    }
}
