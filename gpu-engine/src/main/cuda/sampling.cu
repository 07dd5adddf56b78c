// sample_rows: temperature / top-k / top-p / min-p sampling of fp32 logit rows on the device, so that only token
// ids come back to the host. One block (1024 threads) per row. The host supplies one uniform u in [0, 1) per row
// (it keeps each sequence's seeded generator). Semantics: io.distserve.engine.sampling.RowSampling (the Java
// reference, which the engine's host fallback also uses); the two are meant to agree bit for bit:
//   - temperature <= 0, or no logit above -inf: greedy (argmax, lowest id on ties, NaN never wins; else the first
//     -inf entry; -1 when the row is all NaN).
//   - w = (v == max) ? 1 : (float) exp((double)(v - max) / (double) T), NaN -> 0; the weights overwrite the row.
//   - each weight as an integer mass q = floor(w * 2^42) (exact for w >= 2^-18; w < 2^-42 gets q = 0 and is never
//     drawn). All sums are integer sums: order-independent, so the device and the host agree exactly.
//   - order: w descending, ties lowest id first (key = the float bits of w). Top-k keeps the first k (q > 0),
//     top-p the shortest prefix of the top-k set whose mass reaches ceil(top_p * mass(top-k set)) (at least one),
//     min-p keeps w >= min_p (w of the best token is 1). Found by radix selection over the key bits (4 passes of
//     256-bin count/mass histograms), never a sort.
//   - r = floor(u * keptMass); the token is the kept id (ascending id order) whose cumulative mass first exceeds r.
#include "common.cuh"

#define SAMPLE_THREADS 1024
#define SAMPLE_Q_SCALE 4398046511104.0  // 2^42

struct SampleParams {  // 24 bytes, as CudaKernels.sampleParams packs them
    float temperature;
    int topK;
    float topP;
    float minP;
    double u;
};

__device__ __forceinline__ unsigned long long sample_q(float w) {
    return (unsigned long long)((double)w * SAMPLE_Q_SCALE);
}

__device__ __forceinline__ unsigned long long warp_sum_ull(unsigned long long v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Block-wide sum of an unsigned 64-bit integer; every thread gets it.
__device__ unsigned long long block_sum_ull(unsigned long long v) {
    __shared__ unsigned long long part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum_ull(v);
    __syncthreads();  // part[] may still be read by a previous call
    if (lane == 0) part[warp] = v;
    __syncthreads();
    unsigned long long s = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) s += part[i];
    return s;
}

// Inclusive block-wide scan of an unsigned 64-bit integer; *total gets the block's sum.
__device__ unsigned long long block_scan_ull(unsigned long long v, unsigned long long* total) {
    __shared__ unsigned long long part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        unsigned long long n = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += n;
    }
    __syncthreads();
    if (lane == 31) part[warp] = v;
    __syncthreads();
    unsigned long long before = 0, all = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) {
        if (i < warp) before += part[i];
        all += part[i];
    }
    *total = all;
    return v + before;
}

// The greedy token of the row, as Sampler.greedyToken picks it. Every thread gets it.
__device__ int sample_greedy(const float* row, int vocab) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ int result;
    float best = -INFINITY;
    int bestIdx = 0x7fffffff;
    int firstNegInf = 0x7fffffff;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float v = row[j];
        if (v > best) { best = v; bestIdx = j; }
        if (v == -INFINITY && j < firstNegInf) firstNegInf = j;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, bestIdx, o);
        int of = __shfl_xor_sync(0xffffffffu, firstNegInf, o);
        if (ov > best || (ov == best && oi < bestIdx)) { best = ov; bestIdx = oi; }
        firstNegInf = min(firstNegInf, of);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __shared__ int sf[32];
    __syncthreads();
    if (lane == 0) { sv[warp] = best; si[warp] = bestIdx; sf[warp] = firstNegInf; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
            if (sv[w] > best || (sv[w] == best && si[w] < bestIdx)) { best = sv[w]; bestIdx = si[w]; }
            firstNegInf = min(firstNegInf, sf[w]);
        }
        result = bestIdx != 0x7fffffff ? bestIdx : (firstNegInf != 0x7fffffff ? firstNegInf : -1);
    }
    __syncthreads();
    return result;
}

struct SelectResult {
    int key;                        // the selected key (float bits of a weight)
    unsigned long long aboveMass;   // mass of the eligible entries with a larger key
    unsigned int aboveCount;        // their count
    unsigned int tieCount;          // eligible entries with exactly this key
};

// Radix selection over the weights of the row: the largest key K such that the measure (count when byMass is
// false, else mass) of the eligible entries (q > 0, key > lowKey) with key >= K reaches need. The caller makes
// sure that all eligible entries together reach need.
__device__ SelectResult sample_select(const float* row, int vocab, int lowKey, bool byMass,
                                      unsigned long long need) {
    __shared__ unsigned int hc[256];
    __shared__ unsigned long long hm[256];
    __shared__ SelectResult res;
    __shared__ int prefix;
    int mask = 0;
    if (threadIdx.x == 0) { prefix = 0; res.aboveMass = 0; res.aboveCount = 0; }
    for (int shift = 24; shift >= 0; shift -= 8) {
        __syncthreads();
        for (int i = threadIdx.x; i < 256; i += blockDim.x) { hc[i] = 0; hm[i] = 0; }
        __syncthreads();
        int pre = prefix;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            float w = row[j];
            unsigned long long q = sample_q(w);
            int key = __float_as_int(w);
            if (q > 0 && key > lowKey && (key & mask) == pre) {
                int d = (key >> shift) & 255;
                atomicAdd(&hc[d], 1u);
                atomicAdd(&hm[d], q);
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int d = 255;
            for (; d > 0; d--) {
                unsigned long long have = byMass ? res.aboveMass + hm[d] : (unsigned long long)(res.aboveCount + hc[d]);
                if (have >= need) break;
                res.aboveMass += hm[d];
                res.aboveCount += hc[d];
            }
            prefix = pre | (d << shift);
            res.tieCount = hc[d];
        }
        mask |= 255 << shift;
    }
    __syncthreads();
    if (threadIdx.x == 0) res.key = prefix;
    __syncthreads();
    SelectResult out = res;
    __syncthreads();
    return out;
}

// ids[r] = the sampled token of logits row r (see the top of this file); the row is overwritten with its weights.
// grid (rows), block 1024.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_rows(float* __restrict__ logits,
        const SampleParams* __restrict__ params, int* __restrict__ ids, int vocab) {
    pdl_enter();
    float* row = logits + (size_t)blockIdx.x * vocab;
    const SampleParams p = params[blockIdx.x];
    __shared__ float smax[32];
    __shared__ int found;

    float mx = -INFINITY;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, row[j]);  // fmaxf ignores NaN
    mx = warp_max(mx);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) smax[warp] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) mx = fmaxf(mx, smax[i]);
    if (!(p.temperature > 0.f) || mx == -INFINITY) {
        int g = sample_greedy(row, vocab);
        if (threadIdx.x == 0) ids[blockIdx.x] = g;
        return;
    }

    // weights in place; total mass and count of drawable entries
    double t = (double)p.temperature;
    unsigned long long total = 0, positive = 0;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float v = row[j];
        float w = v != v ? 0.f : (v == mx ? 1.f : (float)exp((double)(v - mx) / t));
        row[j] = w;
        unsigned long long q = sample_q(w);
        total += q;
        positive += q > 0;
    }
    total = block_sum_ull(total);
    positive = block_sum_ull(positive);

    // selection: kept = q > 0 && (key > selKey || (key == selKey && tieRank < selTies)) && w >= minP
    int selKey = -1;
    unsigned long long selTies = 0, candMass = total, aboveSel = total;
    if (p.topK > 0 && (unsigned long long)p.topK < positive) {
        SelectResult s = sample_select(row, vocab, -1, false, (unsigned long long)p.topK);
        selKey = s.key;
        selTies = (unsigned long long)p.topK - s.aboveCount;
        aboveSel = s.aboveMass;
        candMass = s.aboveMass + selTies * sample_q(__int_as_float(s.key));
    }
    if (p.topP < 1.f) {
        unsigned long long target = (unsigned long long)ceil((double)p.topP * (double)candMass);
        if (target > candMass) target = candMass;
        if (target < 1) target = 1;
        if (selKey >= 0 && aboveSel < target) {  // the nucleus ends inside the top-k boundary's ties
            unsigned long long qt = sample_q(__int_as_float(selKey));
            unsigned long long m = (target - aboveSel + qt - 1) / qt;
            if (m < selTies) selTies = m;
        } else {
            SelectResult s = sample_select(row, vocab, selKey, true, target);
            unsigned long long qt = sample_q(__int_as_float(s.key));
            unsigned long long m = (target - s.aboveMass + qt - 1) / qt;
            selKey = s.key;
            selTies = m < s.tieCount ? m : s.tieCount;
        }
    }
    float minP = p.minP > 0.f ? p.minP : 0.f;

    unsigned long long kept = 0;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
        float w = row[j];
        if (__float_as_int(w) > selKey && w >= minP) kept += sample_q(w);
    }
    kept = block_sum_ull(kept);
    if (selKey >= 0 && __int_as_float(selKey) >= minP) kept += selTies * sample_q(__int_as_float(selKey));

    double u = p.u < 0.0 ? 0.0 : p.u;
    unsigned long long r = (unsigned long long)(u * (double)kept);
    if (r >= kept) r = kept - 1;

    if (threadIdx.x == 0) found = -1;
    unsigned long long cum = 0, tieSeen = 0;
    for (int base = 0; base < vocab; base += blockDim.x) {
        int j = base + threadIdx.x;
        float w = j < vocab ? row[j] : 0.f;
        unsigned long long q = sample_q(w);
        int key = __float_as_int(w);
        bool tie = q > 0 && key == selKey;
        unsigned long long tieTotal;
        unsigned long long tieRank = tieSeen + block_scan_ull(tie ? 1ull : 0ull, &tieTotal) - (tie ? 1 : 0);
        bool keep = q > 0 && w >= minP && (key > selKey || (tie && tieRank < selTies));
        unsigned long long qk = keep ? q : 0, tileTotal;
        unsigned long long incl = cum + block_scan_ull(qk, &tileTotal);
        if (qk > 0 && incl > r && incl - qk <= r) found = j;  // exactly one entry crosses r
        cum += tileTotal;
        tieSeen += tieTotal;
        __syncthreads();
        if (found >= 0 || cum > r) break;
    }
    __syncthreads();
    if (threadIdx.x == 0) ids[blockIdx.x] = found;
}

// The repetition penalty of each row before sampling (Hugging Face's RepetitionPenaltyLogitsProcessor, as the host's
// Sampler.applyRepetitionPenalty): for every distinct id t in hist[off[r] .. off[r + 1]) within [0, vocab),
// logits[r, t] is divided by penalty[r] when positive, else multiplied by it. A row whose penalty is 1 is left
// alone. Each id is applied once however often it occurs: a bit per id in shared memory, and only the thread whose
// atomicOr set the bit applies it. grid (rows), block 256, dynamic shared memory ceil(vocab / 32) * 4 bytes.
extern "C" __global__ void __launch_bounds__(256) repetition_penalty(float* __restrict__ logits,
        const int* __restrict__ hist, const int* __restrict__ off, const float* __restrict__ penalty, int vocab) {
    pdl_enter();
    extern __shared__ unsigned int seen[];
    const int r = blockIdx.x;
    const float p = penalty[r];
    if (p == 1.f) return;
    const int words = (vocab + 31) >> 5;
    for (int i = threadIdx.x; i < words; i += blockDim.x) seen[i] = 0u;
    __syncthreads();
    float* row = logits + (size_t)r * vocab;
    for (int i = off[r] + threadIdx.x; i < off[r + 1]; i += blockDim.x) {
        const int t = hist[i];
        if (t < 0 || t >= vocab) continue;
        const unsigned int bit = 1u << (t & 31);
        if (!(atomicOr(&seen[t >> 5], bit) & bit)) {
            const float l = row[t];
            row[t] = l > 0.f ? l / p : l * p;
        }
    }
}
