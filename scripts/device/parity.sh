#!/usr/bin/env bash
# On the device machine: Hugging Face parity of our CPU engine, and the chat-template references rendered by
# transformers. Here: scripts/device/pack.sh; then run `bash scripts/device/parity.sh` there with carry [".carry"].
# Writes $OUT/parity.txt and $OUT/qwen3_chat_template_cases.json.
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/parity.txt"
{ date -u; nvidia-smi --query-gpu=name --format=csv,noheader; nproc
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; } | tee "$log"
"${DS[@]}" model generate --shape tiny --seed 7 --tokenizer "$TOKENIZER" --out /tmp/tiny-qwen3 --log-level WARNING | tee -a "$log"
"${DS[@]}" model generate --shape qwen3-0.6b --seed 7 --tokenizer "$TOKENIZER" --out /tmp/qwen3-0.6b --log-level WARNING | tee -a "$log"
for m in /tmp/tiny-qwen3 /tmp/qwen3-0.6b; do
  python3 gpu-engine/scripts/hf_parity.py "$m" "${DS[@]}" 2>&1 | grep -v "^\[\|WARN" | tee -a "$log"
done
python3 gpu-engine/scripts/chat_template_reference.py "$TOKENIZER" "$out/qwen3_chat_template_cases.json" 2>&1 | tee -a "$log"
