#!/usr/bin/env bash
# On the device machine: programmatic launches off (the default) against on, same settings, same process order
# (qwen3-8b batch 1 and 32, qwen3-0.6b batch 1; prompt 128, 64 new). CUDA_NOTES section 11.
#   Here: scripts/device/pack.sh. There: `bash scripts/device/pdl_ab.sh` with carry [".carry"]. Writes $OUT/pdl_ab.txt.
# Written after the 2026-12-06 run to repeat that A/B fairly; not run yet (no device time left that day).
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"; log="$out/pdl_ab.txt"
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } | tee "$log"
for s in qwen3-8b qwen3-0.6b; do
  [ -f "/tmp/$s/config.json" ] || "${DS[@]}" model generate --shape "$s" --seed 1 --tokenizer "$TOKENIZER" --out "/tmp/$s" --log-level WARNING | tail -1 | tee -a "$log"
done
for round in 1 2; do
  for pdl in false true; do
    for s in qwen3-8b qwen3-0.6b; do
      b=1,32; [ $s = qwen3-0.6b ] && b=1
      echo "== round $round, $s, -Ddistserve.cuda.pdl=$pdl" | tee -a "$log"
      "$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g -Ddistserve.cuda.pdl=$pdl -cp /tmp/distserve-app io.distserve.cli.DistServeCli \
        bench engine --backend cuda --model /tmp/$s --batch $b --prompt-tokens 128 --new-tokens 64 --log-level INFO 2>&1 \
        | grep -E '^\| qwen|tuned in|tuning cache' | cut -c1-400 | sort -u | tee -a "$log"
    done
  done
done
