#!/usr/bin/env python3
"""Compare our engine's logits with Hugging Face transformers on the same generated checkpoint.

Usage: hf_parity.py MODEL_DIR DISTSERVE_CMD...   (e.g. hf_parity.py /tmp/tiny java -jar distserve.jar)
       PARITY_BACKEND=cuda hf_parity.py ...          (our CUDA backend: bf16 activations and KV cache)

For each prompt: tokenize with the checkpoint's own tokenizer (no special tokens), run
`DISTSERVE_CMD model logits MODEL_DIR --token-ids ... --out F` (our CPU backend, float32 compute, logits at every
position as little-endian float32 rows), run transformers' Qwen3ForCausalLM (eager attention) in float32 on the same
ids, and report the largest absolute difference, the logit spread, and whether greedy choices agree. The checkpoint's
weights are bf16, so both sides compute on identical weights; both compute in float32, so they should agree to
~1e-4 relative. A bf16 transformers run is reported too, for scale.
Exit code 1 when a prompt's float32 difference exceeds the tolerance or a non-tied greedy choice differs.

With PARITY_BACKEND=cuda our side computes in bf16, so the bar is transformers' own bf16: our distance to the float32
reference must be at most twice transformers-bf16's distance to it (and greedy choices must agree wherever the top-2
gap is clearly larger than that distance).
"""
import os
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "Shanghai is a city that ",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "你好，世界！这是一个测试。Hello, world!",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
]
REL_TOL = 2e-3  # max |ours - hf| / std(hf logits), float32 vs float32
BACKEND = os.environ.get("PARITY_BACKEND", "cpu")


def main():
    model_dir = sys.argv[1]
    ours_cmd = sys.argv[2:]
    tok = AutoTokenizer.from_pretrained(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf32 = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                attn_implementation="eager").to(device).eval()
    hf16 = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16,
                                                attn_implementation="eager").to(device).eval()
    ok = True
    print(f"our backend: {BACKEND}")
    print(f"model {model_dir}  layers={hf32.config.num_hidden_layers} hidden={hf32.config.hidden_size} "
          f"vocab={hf32.config.vocab_size}  transformers device={device}")
    print(f"{'prompt':>6} {'tokens':>6} {'logit std':>9} {'max|d| f32':>11} {'rel':>9} {'max|d| bf16':>12} "
          f"{'argmax agree':>12} {'min top2 gap':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, prompt in enumerate(PROMPTS):
            ids = tok(prompt, add_special_tokens=False).input_ids
            out = os.path.join(tmp, f"ours_{i}.f32")
            subprocess.run(ours_cmd + ["model", "logits", model_dir, "--token-ids", ",".join(map(str, ids)),
                                       "--out", out, "--backend", BACKEND], check=True)
            vocab = hf32.config.vocab_size
            ours = np.fromfile(out, dtype="<f4").reshape(len(ids), vocab)
            with torch.no_grad():
                x = torch.tensor([ids], device=device)
                ref32 = hf32(x).logits[0].float().cpu().numpy()
                ref16 = hf16(x).logits[0].float().cpu().numpy()
            diff32 = np.abs(ours - ref32).max()
            diff16 = np.abs(ours - ref16).max()
            std = ref32.std()
            top2 = np.sort(ref32, axis=1)[:, -2:]
            gaps = top2[:, 1] - top2[:, 0]
            agree = ours.argmax(1) == ref32.argmax(1)
            # a greedy disagreement only counts where the reference's top-2 gap is clearly above the noise
            rel = diff32 / std
            hf16_vs_32 = np.abs(ref16 - ref32).max()
            noise = diff32 if BACKEND == "cpu" else max(diff32, hf16_vs_32)
            real_disagreements = int(np.sum(~agree & (gaps > 2 * max(noise, 1e-6))))
            print(f"{i:>6} {len(ids):>6} {std:>9.3f} {diff32:>11.2e} {rel:>9.2e} {diff16:>12.2e} "
                  f"{int(agree.sum()):>5}/{len(ids):<6} {gaps.min():>12.2e}  hf bf16 vs f32 {hf16_vs_32:.2e}")
            limit = REL_TOL * std if BACKEND == "cpu" else 2 * hf16_vs_32
            if diff32 > limit or real_disagreements:
                ok = False
    print("PARITY OK" if ok else "PARITY FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
