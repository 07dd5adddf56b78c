# Lane-level emulation of src/main/cuda/attention_prefill.cu (flash_prefill) against a float64 reference, for
# checking its fragment and index math without a GPU: ldmatrix (.trans) and mma.m16n8k16 per the PTX ISA's fragment
# layouts, everything else (paged loader, Q/K/V addressing, mask, online softmax, bf16 P, stores) transcribed
# from the kernel line by line. Keep it in step with the kernel. Run: python3 gpu-engine/scripts/attention_prefill_emu.py
# (numpy; a few seconds). Expected: rel ~2e-3, max abs < 1e-2, nan 0 on every line.
import numpy as np, sys

def bf16(x):
    x = np.asarray(x, dtype=np.float32)
    b = x.view(np.uint32).astype(np.uint64)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return (r.astype(np.uint32)).view(np.float32)

LANES = np.arange(32)
GID = LANES >> 2
TID4 = LANES & 3

def ldmatrix_x4(smem, rows, cols, trans=False):
    # rows, cols: per-lane row/col address (32,) into 2-D smem; returns r[4] each (32, 2) element pairs
    out = []
    for i in range(4):
        if not trans:
            rr = rows[8 * i + (LANES >> 2)]
            cc = cols[8 * i + (LANES >> 2)]
            out.append(np.stack([smem[rr, cc + 2 * TID4], smem[rr, cc + 2 * TID4 + 1]], axis=1))
        else:
            r0 = rows[8 * i + 2 * TID4]; c0 = cols[8 * i + 2 * TID4]
            r1 = rows[8 * i + 2 * TID4 + 1]; c1 = cols[8 * i + 2 * TID4 + 1]
            out.append(np.stack([smem[r0, c0 + GID], smem[r1, c1 + GID]], axis=1))
    return out

def mma(c, a, b):
    # c: (32,4) float32; a: list of 4 (32,2); b: list of 2 (32,2)
    A = np.zeros((16, 16)); B = np.zeros((16, 8)); C = np.zeros((16, 8))
    for l in range(32):
        g, t = l >> 2, l & 3
        A[g, 2*t:2*t+2] = a[0][l]; A[g+8, 2*t:2*t+2] = a[1][l]
        A[g, 2*t+8:2*t+10] = a[2][l]; A[g+8, 2*t+8:2*t+10] = a[3][l]
        B[2*t:2*t+2, g] = b[0][l]; B[2*t+8:2*t+10, g] = b[1][l]
        C[g, 2*t:2*t+2] = c[l, 0:2]; C[g+8, 2*t:2*t+2] = c[l, 2:4]
    D = (A.astype(np.float64) @ B + C).astype(np.float32)
    res = np.zeros((32, 4), np.float32)
    for l in range(32):
        g, t = l >> 2, l & 3
        res[l, 0:2] = D[g, 2*t:2*t+2]; res[l, 2:4] = D[g+8, 2*t:2*t+2]
    return res

def run_block(HD, bid, q, cache, items, tables, stride, out, heads, kvHeads, HG, layer, numLayers, bs, scaleLog2):
    KT, WARPS, THREADS, ROWS = 64, 4, 128, 64
    LD = HD + 8; CPR = HD // 8; STEP = THREADS // CPR; PASSES = KT // STEP; KD = HD // 16; ND = HD // 8
    Ks = np.full((2, KT, LD), np.nan, np.float32); Vs = np.full((2, KT, LD), np.nan, np.float32)
    Qs = Ks[1]
    hgCount = heads // HG
    itemIdx = bid // hgCount
    head0 = (bid - itemIdx * hgCount) * HG
    slice_, tok0, nTok, pos0 = items[4*itemIdx:4*itemIdx+4]
    g = head0 // (heads // kvHeads)
    table = tables[slice_ * stride:]
    kEnd = pos0 + nTok
    nTiles = (kEnd + KT - 1) // KT
    for tid in range(THREADS):
        for i in range(ROWS * CPR // THREADS):
            c = tid + i * THREADS
            r, col = c // CPR, (c % CPR) * 8
            w = r >> 4
            tok = (w // HG) * 16 + (r & 15)
            if tok < nTok:
                base = ((tok0 + tok) * heads + head0 + w % HG) * HD + col
                Qs[r, col:col+8] = q[base:base+8]
            else:
                Qs[r, col:col+8] = 0
    blockElems = numLayers * 2 * kvHeads * bs * HD
    kBase = (((0 * numLayers + layer) * 2 + 0) * kvHeads + g) * bs * HD
    vBase = (((0 * numLayers + layer) * 2 + 1) * kvHeads + g) * bs * HD
    def loadKV(stage, k0):
        for tid in range(THREADS):
            lr, lc = tid // CPR, (tid % CPR) * 8
            p = k0 + lr; b = p // bs; s = p - b * bs
            bi, sl = [], []
            for i in range(PASSES):
                bi.append(b); sl.append(s)
                s += STEP
                if s >= bs:
                    if bs >= STEP:
                        s -= bs; b += 1
                    else:
                        b += s // bs; s %= bs
            for i in range(PASSES):
                ok = k0 + lr + i * STEP < kEnd
                if ok:
                    off = table[bi[i]] * blockElems + sl[i] * HD + lc
                    Ks[stage, lr + i*STEP, lc:lc+8] = cache[kBase + off:kBase + off + 8]
                    Vs[stage, lr + i*STEP, lc:lc+8] = cache[vBase + off:vBase + off + 8]
                else:
                    Ks[stage, lr + i*STEP, lc:lc+8] = 0
                    Vs[stage, lr + i*STEP, lc:lc+8] = 0
    loadKV(0, 0)
    qf = {}
    for warp in range(WARPS):
        for kk in range(KD):
            qf[warp, kk] = ldmatrix_x4(Qs, warp * 16 + (LANES & 15), kk * 16 + (LANES >> 4) * 8)
    Qs[:] = np.nan  # tile 1 overwrites it
    state = {}
    for warp in range(WARPS):
        wTok0 = (warp // HG) * 16
        state[warp] = dict(o=np.zeros((ND, 32, 4), np.float32), m0=np.full(32, -np.inf, np.float32),
                           m1=np.full(32, -np.inf, np.float32), l0=np.zeros(32, np.float32), l1=np.zeros(32, np.float32))
    for t in range(nTiles):
        k0 = t * KT; st = t & 1
        if t + 1 < nTiles:
            loadKV(st ^ 1, k0 + KT)
        for warp in range(WARPS):
            S = state[warp]
            wTok0 = (warp // HG) * 16
            wActive = wTok0 < nTok
            wPosMin = pos0 + wTok0
            wPosMax = pos0 + min(wTok0 + 15, nTok - 1)
            rowPos0 = wPosMin + GID; rowPos1 = rowPos0 + 8
            if not wActive or k0 > wPosMax:
                continue
            s = np.zeros((8, 32, 4), np.float32)
            for np_ in range(4):
                for kk in range(KD):
                    b = ldmatrix_x4(Ks[st], np_ * 16 + (LANES >> 4) * 8 + (LANES & 7), kk * 16 + ((LANES >> 3) & 1) * 8)
                    s[2*np_] = mma(s[2*np_], qf[warp, kk], b[0:2])
                    s[2*np_+1] = mma(s[2*np_+1], qf[warp, kk], b[2:4])
            needMask = k0 + KT - 1 > wPosMin
            x = s * np.float32(scaleLog2)
            if needMask:
                for nb in range(8):
                    for e in range(4):
                        key = k0 + nb * 8 + 2 * TID4 + (e & 1)
                        rp = rowPos1 if (e & 2) else rowPos0
                        x[nb, key > rp, e] = -np.inf
            mx0 = np.max(x[:, :, 0:2], axis=(0, 2)); mx1 = np.max(x[:, :, 2:4], axis=(0, 2))
            for d in (1, 2):
                mx0 = np.maximum(mx0, mx0[LANES ^ d]); mx1 = np.maximum(mx1, mx1[LANES ^ d])
            mn0 = np.maximum(S['m0'], mx0); mn1 = np.maximum(S['m1'], mx1)
            mu0 = np.where(mn0 == -np.inf, 0, mn0).astype(np.float32); mu1 = np.where(mn1 == -np.inf, 0, mn1).astype(np.float32)
            a0 = np.exp2(S['m0'] - mu0); a1 = np.exp2(S['m1'] - mu1)
            S['m0'], S['m1'] = mn0, mn1
            p = np.empty_like(x)
            p[:, :, 0:2] = np.exp2(x[:, :, 0:2] - mu0[None, :, None])
            p[:, :, 2:4] = np.exp2(x[:, :, 2:4] - mu1[None, :, None])
            rs0 = p[:, :, 0:2].sum(axis=(0, 2)); rs1 = p[:, :, 2:4].sum(axis=(0, 2))
            pb = bf16(p)
            pa = []
            for kc in range(4):
                pa.append([pb[2*kc][:, 0:2], pb[2*kc][:, 2:4], pb[2*kc+1][:, 0:2], pb[2*kc+1][:, 2:4]])
            S['l0'] = S['l0'] * a0 + rs0; S['l1'] = S['l1'] * a1 + rs1
            o = S['o']
            o[:, :, 0:2] *= a0[None, :, None]; o[:, :, 2:4] *= a1[None, :, None]
            for kc in range(4):
                for ndp in range(ND // 2):
                    b = ldmatrix_x4(Vs[st], kc * 16 + (LANES & 7) + ((LANES >> 3) & 1) * 8, ndp * 16 + (LANES >> 4) * 8, trans=True)
                    o[2*ndp] = mma(o[2*ndp], pa[kc], b[0:2])
                    o[2*ndp+1] = mma(o[2*ndp+1], pa[kc], b[2:4])
    for warp in range(WARPS):
        S = state[warp]
        wTok0 = (warp // HG) * 16
        if wTok0 >= nTok:
            continue
        l0 = S['l0'].copy(); l1 = S['l1'].copy()
        for d in (1, 2):
            l0 = l0 + l0[LANES ^ d]; l1 = l1 + l1[LANES ^ d]
        head = head0 + warp % HG
        for lane in range(32):
            t0 = wTok0 + GID[lane]; t1 = t0 + 8
            for (tt, ll, e) in ((t0, l0[lane], 0), (t1, l1[lane], 2)):
                if tt < nTok:
                    for nd in range(ND):
                        base = ((tok0 + tt) * heads + head) * HD + nd * 8 + 2 * TID4[lane]
                        out[base:base+2] = bf16(S['o'][nd, lane, e:e+2] * (1 / ll))

def check(HD, heads, kvHeads, bs, lens, starts, seed=1):
    rng = np.random.default_rng(seed)
    group = heads // kvHeads
    HG = 4 if group % 4 == 0 else 2 if group % 2 == 0 else 1
    QT = 64 // HG
    numLayers, layer = 2, 1
    ends = [s + l for s, l in zip(starts, lens)]
    numBlocks = sum((e + bs - 1) // bs for e in ends) + 2
    perm = rng.permutation(numBlocks)
    tabs = []; nxt = 0
    for e in ends:
        nb = (e + bs - 1) // bs
        tabs.append(perm[nxt:nxt+nb]); nxt += nb
    stride = max(len(t) for t in tabs)
    tables = np.zeros(len(lens) * stride, np.int64)
    for i, t in enumerate(tabs):
        tables[i*stride:i*stride+len(t)] = t
    cache = bf16(rng.standard_normal(numBlocks * numLayers * 2 * kvHeads * bs * HD))
    n = sum(lens)
    q = bf16(rng.standard_normal(n * heads * HD))
    sliceStart = np.cumsum([0] + lens[:-1])
    items = []
    for s in range(len(lens)):
        for t in range(0, lens[s], QT):
            items += [s, sliceStart[s] + t, min(QT, lens[s] - t), starts[s] + t]
    nItems = len(items) // 4
    # heavy first
    order = sorted(range(nItems), key=lambda i: -(items[4*i+3] + items[4*i+2]))
    items = [items[4*i + j] for i in order for j in range(4)]
    out = np.full(n * heads * HD, np.nan, np.float32)
    scale = 1 / np.sqrt(HD)
    for bid in range(nItems * (heads // HG)):
        run_block(HD, bid, q, cache, items, tables, stride, out, heads, kvHeads, HG, layer, numLayers, bs,
                  np.float32(scale * np.log2(np.e)))
    # reference
    blockElems = numLayers * 2 * kvHeads * bs * HD
    ref = np.zeros(n * heads * HD)
    for s in range(len(lens)):
        for j in range(lens[s]):
            t = sliceStart[s] + j; pos = starts[s] + j
            for h in range(heads):
                g = h // group
                K = np.zeros((pos + 1, HD)); V = np.zeros((pos + 1, HD))
                for p in range(pos + 1):
                    blk = tabs[s][p // bs]
                    kb = ((blk * numLayers + layer) * 2 + 0) * kvHeads * bs * HD + g * bs * HD + (p % bs) * HD
                    vb = ((blk * numLayers + layer) * 2 + 1) * kvHeads * bs * HD + g * bs * HD + (p % bs) * HD
                    K[p] = cache[kb:kb+HD]; V[p] = cache[vb:vb+HD]
                qq = q[(t * heads + h) * HD:(t * heads + h + 1) * HD].astype(np.float64)
                sc = K @ qq * scale
                w = np.exp(sc - sc.max()); w /= w.sum()
                ref[(t * heads + h) * HD:(t * heads + h + 1) * HD] = w @ V
    err = np.sqrt(np.sum((out - ref) ** 2) / np.sum(ref ** 2))
    print(f"HD {HD} heads {heads}/{kvHeads} HG {HG} bs {bs} lens {lens} starts {starts}: rel {err:.3e} "
          f"maxabs {np.nanmax(np.abs(out - ref)):.3e} nan {np.isnan(out).sum()}", flush=True)

if __name__ == '__main__':
    check(64, 8, 2, 5, [20, 17], [0, 70])
    check(64, 4, 4, 16, [70], [3])
    check(128, 8, 1, 64, [33], [64])
    check(64, 6, 2, 1, [18], [9])
    check(64, 4, 2, 7, [40, 16], [130, 0])
    check(128, 4, 2, 16, [45, 19], [0, 100], seed=3)
    check(64, 12, 3, 64, [130], [0], seed=4)
