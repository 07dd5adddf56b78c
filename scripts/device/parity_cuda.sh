#!/usr/bin/env bash
# On the device machine: Hugging Face parity of our CUDA backend (bf16) on generated Qwen3 checkpoints.
# Here: scripts/device/pack.sh; there: `bash scripts/device/parity_cuda.sh` with carry [".carry"].
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/parity_cuda.txt"
{ date -u; nvidia-smi --query-gpu=name --format=csv,noheader; } | tee "$log"
for s in tiny qwen3-0.6b qwen3-8b; do
  [ -f "/tmp/$s-qwen3/config.json" ] || "${DS[@]}" model generate --shape "$s" --seed 7 --tokenizer "$TOKENIZER" --out "/tmp/$s-qwen3" --log-level WARNING | tee -a "$log"
  PARITY_BACKEND=cuda python3 gpu-engine/scripts/hf_parity.py "/tmp/$s-qwen3" "${DS[@]}" 2>&1 | grep -v "^\[\|WARN\|Loading weights\|wrote " | tee -a "$log"
done
