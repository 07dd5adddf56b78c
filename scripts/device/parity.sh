#!/usr/bin/env bash
# On the device machine: Hugging Face parity of our CPU engine and the chat-template references.
#   scripts/device/pack.sh here, then run `bash scripts/device/parity.sh` there with carry [".carry"].
# Writes $OUT/parity.txt and $OUT/qwen3_chat_template_cases.json.
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
ds() { "$JAVA" -Xmx24g -jar "$DISTSERVE_JAR" "$@"; }
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' | tee "$out/parity.txt"
nvidia-smi --query-gpu=name --format=csv,noheader | tee -a "$out/parity.txt"
ds model generate --shape tiny --seed 7 --tokenizer .carry/qwen3-tokenizer --out /tmp/tiny-qwen3
ds model generate --shape qwen3-0.6b --seed 7 --tokenizer .carry/qwen3-tokenizer --out /tmp/qwen3-0.6b
for m in /tmp/tiny-qwen3 /tmp/qwen3-0.6b; do
  python3 gpu-engine/scripts/hf_parity.py "$m" "$JAVA" -Xmx24g -jar "$DISTSERVE_JAR" 2>&1 | tee -a "$out/parity.txt"
done
python3 gpu-engine/scripts/chat_template_reference.py .carry/qwen3-tokenizer "$out/qwen3_chat_template_cases.json" 2>&1 | tee -a "$out/parity.txt"
