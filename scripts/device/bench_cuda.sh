#!/usr/bin/env bash
# On the device machine: issue 6's benchmark. Generates the qwen3-0.6b and qwen3-8b checkpoints there, runs our
# engine (CUDA backend) and Hugging Face transformers eager on the same weights, prints both.
#   Here: scripts/device/pack.sh. There: `bash scripts/device/bench_cuda.sh [shapes] [batches]` with carry [".carry"].
# Writes $OUT/bench_cuda.txt (and hf_*.json).
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/bench_cuda.txt"
shapes=${1:-qwen3-0.6b,qwen3-8b}
batches=${2:-1,8,32,128}
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } | tee "$log"
models=()
for s in ${shapes//,/ }; do
  [ -f "/tmp/$s/config.json" ] || "${DS[@]}" model generate --shape "$s" --seed 1 --tokenizer "$TOKENIZER" --out "/tmp/$s" --log-level WARNING | tee -a "$log"
  models+=(--model "/tmp/$s")
done
echo "== ours (CUDA backend)" | tee -a "$log"
"${DS[@]}" bench engine --backend cuda "${models[@]}" --batch "$batches" --prompt-tokens 128 --new-tokens 128 \
  --prefill 2048 --json "$out/ours.json" --log-level INFO 2>&1 | awk '!/ INFO /||/tuned in/' | tee -a "$log"
echo "== Hugging Face transformers eager, same weights" | tee -a "$log"
for s in ${shapes//,/ }; do
  python3 gpu-engine/scripts/hf_bench.py "/tmp/$s" --batches "$batches" --prompt 128 --new 128 --prefill 2048 --json "$out/hf_$s.json" 2>&1 | grep -v Warning | tee -a "$log"
done
echo "== one table: ours vs HF eager vs the roofline (ceilings measured now, on this GPU)" | tee -a "$log"
hfs=(); dirs=()
for s in ${shapes//,/ }; do hfs+=(--hf "$out/hf_$s.json"); dirs+=("/tmp/$s"); done
python3 gpu-engine/scripts/bench_table.py --ours "$out/ours.json" "${hfs[@]}" --models "${dirs[@]}" --measure 2>&1 | tee -a "$log"
