#!/usr/bin/env python3
"""Hugging Face transformers eager on a generated checkpoint: the peer numbers for gpu-engine's CUDA benchmark.

Usage: hf_bench.py MODEL_DIR [--batches 1,8,32,128] [--prompt 128] [--new 128] [--prefill 2048] [--json OUT]

Decode: a batch of random prompts of --prompt tokens, then --new greedy tokens with the KV cache (model.generate,
min_new_tokens = max_new_tokens so every sequence runs the full length); tok/s = batch x new / decode time, where
decode time = total - time of a 1-token generate (the prefill). Prefill: one forward of --prefill tokens, median of 5.
All in bf16, eager attention, CUDA events around each timed region.
"""
import argparse
import json
import statistics

import torch
from transformers import AutoModelForCausalLM


def timed(fn, repeat=1):
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batches", default="1,8,32,128")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--json")
    a = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16,
                                                 attn_implementation="eager").cuda().eval()
    vocab = min(model.config.vocab_size, 151000)
    g = torch.Generator(device="cuda").manual_seed(0)
    results = {"model": a.model, "gpu": torch.cuda.get_device_name(), "decode": [], "prefill": None}
    with torch.no_grad():
        ids = torch.randint(0, vocab, (1, a.prefill), device="cuda", generator=g)
        model(ids[:, :64])  # warm-up
        results["prefill"] = {"tokens": a.prefill, "seconds": timed(lambda: model(ids), repeat=5)}
        print(f"prefill {a.prefill} tokens: {results['prefill']['seconds'] * 1000:.1f} ms", flush=True)
        for b in [int(x) for x in a.batches.split(",")]:
            prompts = torch.randint(0, vocab, (b, a.prompt), device="cuda", generator=g)
            mask = torch.ones_like(prompts)
            kw = dict(attention_mask=mask, do_sample=False, pad_token_id=0, eos_token_id=None)
            model.generate(prompts, max_new_tokens=2, min_new_tokens=2, **kw)  # warm-up
            first = timed(lambda: model.generate(prompts, max_new_tokens=1, min_new_tokens=1, **kw))
            total = timed(lambda: model.generate(prompts, max_new_tokens=a.new, min_new_tokens=a.new, **kw))
            tps = b * (a.new - 1) / (total - first)
            results["decode"].append({"batch": b, "tok_s": tps, "ms_per_step": (total - first) * 1000 / (a.new - 1)})
            print(f"decode batch {b}: {tps:.1f} tok/s ({(total - first) * 1000 / (a.new - 1):.1f} ms/step)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
