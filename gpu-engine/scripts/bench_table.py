#!/usr/bin/env python3
"""Issue 6's one table: our engine vs Hugging Face transformers eager vs the roofline, per model and batch.

Usage: bench_table.py --ours OURS.json --hf HF_A.json [--hf HF_B.json ...] --models DIR [DIR ...] [--measure]

OURS.json: `distserve bench engine --json` (decode rows + one-prompt prefill). HF_*.json: hf_bench.py --json.
The roofline uses this GPU's measured ceilings (--measure, torch on the GPU: a 4 GiB device-to-device copy for
the memory bandwidth, counting bytes read + written, and an 8192^3 bf16 matmul for the tensor-core rate), or the
--bandwidth / --tflops given. Decode step floor = max(bytes / bandwidth, flops / peak) where bytes = every layer
weight + the LM head once per step + the KV cache of every sequence at its mean context (prompt + new / 2), and
flops = 2 x (layer + LM head params) x batch. Prefill floor (one prompt of T tokens) = (2 x layer params x T +
2 x 2 x T^2 / 2 x head_dim x heads x layers for causal attention + the LM head for one row) / peak.
"""
import argparse
import json
import os


def model_numbers(folder):
    c = json.load(open(os.path.join(folder, "config.json")))
    h, L, inter, v = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
    heads, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    hd = c.get("head_dim", h // heads)
    per_layer = h * (heads * hd) + 2 * h * (kv * hd) + (heads * hd) * h + 3 * h * inter + 2 * h
    if c.get("model_type") == "qwen3":
        per_layer += 2 * hd
    return {"layers": L, "layer_params": L * per_layer, "head_params": v * h, "heads": heads, "hd": hd,
            "kv_bytes_per_token": L * 2 * kv * hd * 2}


def measure():
    import torch
    x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(10):
        y.copy_(x)
    e.record()
    torch.cuda.synchronize()
    bw = 10 * 2 * x.numel() / (s.elapsed_time(e) / 1000)
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        a @ b
    s.record()
    for _ in range(20):
        a @ b
    e.record()
    torch.cuda.synchronize()
    flops = 20 * 2 * 8192 ** 3 / (s.elapsed_time(e) / 1000)
    return bw, flops, torch.cuda.get_device_name()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--hf", action="append", default=[])
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--bandwidth", type=float, help="bytes/s")
    ap.add_argument("--tflops", type=float)
    a = ap.parse_args()
    gpu = "given"
    if a.measure:
        bw, peak, gpu = measure()
    else:
        bw, peak = a.bandwidth, a.tflops * 1e12
    print(f"roofline ceilings, measured on {gpu}: memory {bw / 1e12:.2f} TB/s (copy, read + write), "
          f"bf16 matmul {peak / 1e12:.0f} TFLOP/s")
    ours = json.load(open(a.ours))
    hf = {}
    for f in a.hf:
        d = json.load(open(f))
        hf[os.path.basename(d["model"].rstrip("/"))] = d
    nums = {os.path.basename(m.rstrip("/")): model_numbers(m) for m in a.models}

    print()
    print("| model | batch | ours tok/s (ms/step) | HF eager tok/s (ms/step) | roofline tok/s (ms/step) | ours / roofline | ours / HF |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in ours["decode"]:
        name, b = r["model"], r["batch"]
        n = nums.get(name)
        ctx = r["prompt"] + r["new"] / 2
        roof = None
        if n:
            bytes_ = 2 * (n["layer_params"] + n["head_params"]) + b * ctx * n["kv_bytes_per_token"]
            flops = 2 * (n["layer_params"] + n["head_params"]) * b
            step = max(bytes_ / bw, flops / peak)
            roof = (b / step, step * 1000)
        h = next((d for d in hf.get(name, {}).get("decode", []) if d["batch"] == b), None)
        cells = [f"{r['tok_s']:,.1f} ({r['ms_per_step']:.1f})",
                 f"{h['tok_s']:,.1f} ({h['ms_per_step']:.1f})" if h else "-",
                 f"{roof[0]:,.0f} ({roof[1]:.2f})" if roof else "-",
                 f"{100 * r['tok_s'] / roof[0]:.0f}%" if roof else "-",
                 f"{r['tok_s'] / h['tok_s']:.1f}x" if h else "-"]
        print(f"| {name} | {b} | " + " | ".join(cells) + " |")
    print()
    print("| model | prefill of one prompt | ours ms | HF eager ms | roofline ms | ours / roofline |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in ours.get("prefill", []):
        name, t = p["model"], p["tokens"]
        n = nums.get(name)
        roof = None
        if n:
            flops = 2 * n["layer_params"] * t + 2 * t * t * n["hd"] * n["heads"] * n["layers"] + 2 * n["head_params"]
            roof = flops / peak * 1000
        hp = hf.get(name, {}).get("prefill")
        hms = hp["seconds"] * 1000 if hp and hp["tokens"] == t else None
        print(f"| {name} | {t} tokens | {p['seconds'] * 1000:.1f} | " + (f"{hms:.1f}" if hms else "-") + " | "
              + (f"{roof:.1f}" if roof else "-") + " | " + (f"{100 * roof / (p['seconds'] * 1000):.0f}%" if roof else "-") + " |")


if __name__ == "__main__":
    main()
