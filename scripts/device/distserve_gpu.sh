#!/usr/bin/env bash
# On the device machine, issue 13 in one call: GPU DistServe on ONE GPU (Prefill, Decode and a Hybrid reference as
# three CUDA engine processes on it, two proxies: NVLink and TCP).
#   Here: scripts/device/pack.sh. There: `bash scripts/device/distserve_gpu.sh [stages] [shapes]` with carry
#   [".carry"]; stages sweep,kv,e2e (default kv,e2e), shapes qwen3-0.6b,qwen3-8b (default both).
#   sweep: kv-transfer's GatherSweep: the gather kernel's configurations against bulk copies, one process
#   kv:  kv-transfer's KvGpuBenchmark: nvlink and tcp-from-device vs a bulk DtoD copy and host tcp (2k/8k/32k tokens)
#   e2e: scripts/device/distserve_gpu.py per shape: DistServe == Hybrid matrix, TTFT price, kill-decode test
#   prefix: issue 15 on qwen3-8b: it/bench/prefix_cache.sh with two CUDA Hybrid engines on the GPU (caching off /
#        on + min_expected_latency / on + kv_aware), at PREFIX_RATES (default 1,4) req/s
# Writes $OUT/distserve_gpu.txt (everything printed), per-shape results JSON and the engines' log tails.
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/distserve_gpu.txt"
stages=${1:-kv,e2e}
shapes=${2:-qwen3-0.6b,qwen3-8b}
logs=/tmp/distserve-gpu-logs; mkdir -p "$logs"
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader; } | tee "$log"
rc=0
if [[ ",$stages," == *",sweep,"* ]]; then
  echo "== the gather kernel's configurations, one process (picks the production one)" | tee -a "$log"
  "$JAVA" -Xmx2g -cp /tmp/distserve-app io.distserve.kv.cuda.GatherSweep 2>&1 | grep -v " INFO " | tee -a "$log"
fi
if [[ ",$stages," == *",kv,"* ]]; then
  echo "== kv-transfer: migration out of device memory (two processes, one GPU)" | tee -a "$log"
  "$JAVA" -Xmx4g -XX:MaxDirectMemorySize=8g -cp /tmp/distserve-app io.distserve.kv.bench.KvGpuBenchmark 10 3 2>&1 \
    | grep -v " INFO " | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
fi
if [[ ",$stages," == *",e2e,"* ]]; then
  for s in ${shapes//,/ }; do
    [ -f "/tmp/$s/config.json" ] || "${DS[@]}" model generate --shape "$s" --seed 1 --tokenizer "$TOKENIZER" \
      --out "/tmp/$s" --log-level WARNING | tee -a "$log"
    echo "== $s: DistServe vs Hybrid on one GPU" | tee -a "$log"
    python3 scripts/device/distserve_gpu.py --model "/tmp/$s" --out "$logs" -- "${DS[@]}" 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  done
  # the engines' logs: their last lines, and every WARN/ERROR, in one file (a call brings back at most 8 files)
  for f in "$logs"/*.log; do
    echo "=== $(basename "$f")"; grep -E " (WARN|ERROR) |decode GEMM per bucket|KV migration offers|connected .* over|CUDA backend on" "$f" | cut -c1-400 | head -40
    echo "--- last lines"; tail -8 "$f"
  done > "$out/engine_logs.txt" 2>&1
  cp "$logs"/*-results.json "$out/" 2>/dev/null
fi
if [[ ",$stages," == *",prefix,"* ]]; then
  s=qwen3-8b
  [ -f "/tmp/$s/config.json" ] || "${DS[@]}" model generate --shape "$s" --seed 1 --tokenizer "$TOKENIZER" \
    --out "/tmp/$s" --log-level WARNING | tee -a "$log"
  for r in ${PREFIX_RATES:-1,4}; do
    r=${r//,/ }
    for rate in $r; do
      echo "== $s: prefix caching and kv_aware routing, 2 Hybrid engines on one GPU, $rate req/s" | tee -a "$log"
      DS="${DS[*]}" MODEL="/tmp/$s" ENGINE_FLAGS="--backend cuda --cache-max-entry-count 0.4" OUT="$out" \
        RATE="$rate" NUM=64 PREFIXES=16 PREFIX_LEN=1024 INPUT_LEN=64 OUTPUT_LEN=64 \
        bash it/bench/prefix_cache.sh 2>&1 | tee -a "$log"
      [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    done
  done
fi
exit $rc
