#!/usr/bin/env bash
# On the device machine: where the time of a qwen3-8b step goes, kernel by kernel (Nsight Compute, one metric:
# gpu__time_duration), for (1) a 2,048-token prefill of one prompt and (2) decode steps at batch 32, eager (no
# CUDA graphs, so that every kernel is a launch ncu sees). Also the plain (unprofiled) 2,048-token prefill time.
#   Here: scripts/device/pack.sh. There: `bash scripts/device/profile_cuda.sh [shape] [all|prefill|decode|decode1|decode32]` with carry [".carry"].
# Writes $OUT/profile_*.csv and $OUT/profile.txt (the per-kernel sums).
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
shape=${1:-qwen3-8b}
log="$out/profile.txt"
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } | tee "$log"
[ -f "/tmp/$shape/config.json" ] || "${DS[@]}" model generate --shape "$shape" --seed 1 --tokenizer "$TOKENIZER" --out "/tmp/$shape" --log-level WARNING | tee -a "$log"
echo "== 2,048-token prefill, batch 1 (unprofiled; prefill tok/s column)" | tee -a "$log"
"${DS[@]}" bench engine --backend cuda --model "/tmp/$shape" --batch 1,1 --prompt-tokens 2048 --new-tokens 2 --log-level WARNING 2>&1 | grep '^|' | tee -a "$log"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
run_ncu() {  # name, bench args...
  local name=$1; shift
  timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    "$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g -Ddistserve.cuda.graphs=false -cp /tmp/distserve-app \
    io.distserve.cli.DistServeCli bench engine --backend cuda --model "/tmp/$shape" "$@" --log-level WARNING \
    > "$out/profile_$name.csv" 2> "$out/profile_$name.err"
  echo "== $name: ncu rc $? ; per kernel (sum ms, launches, mean us)" | tee -a "$log"
  python3 - "$out/profile_$name.csv" <<'PY' | tee -a "$log"
import csv, sys, collections
rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
r = csv.DictReader(rows)
agg = collections.defaultdict(lambda: [0.0, 0])
for row in r:
    if row.get("Metric Name") != "gpu__time_duration.sum": continue
    key = row["Kernel Name"].split("(")[0] + " grid" + row.get("Grid Size", "") + " blk" + row.get("Block Size", "")
    agg[key][0] += float(row["Metric Value"].replace(",", "")) / 1e6
    agg[key][1] += 1
tot = sum(v[0] for v in agg.values())
print(f"total {tot:.2f} ms over {sum(v[1] for v in agg.values())} launches")
for k, (ms, n) in sorted(agg.items(), key=lambda kv: -kv[1][0])[:40]:
    print(f"{ms:9.3f} ms {n:6d} x {1000*ms/n:8.1f} us  {k}")
PY
}
case "${2:-all}" in
  all|prefill) run_ncu prefill2048 --batch 1 --prompt-tokens 2048 --new-tokens 2 ;;&
  all|decode|decode32) run_ncu decode32 --batch 32 --prompt-tokens 128 --new-tokens 4 ;;&
  all|decode|decode1) run_ncu decode1 --batch 1 --prompt-tokens 128 --new-tokens 8 ;;
esac
