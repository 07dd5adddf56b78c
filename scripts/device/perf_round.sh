#!/usr/bin/env bash
# On the device machine: one measuring round of issue 19 (CUDA engine against the H200's limits), in one call.
#   Here: scripts/device/pack.sh. There: `bash scripts/device/perf_round.sh [steps]` with carry [".carry"].
# steps (comma-separated, default all):
#   check     the self-check (scripts/device/cuda_check.sh) while qwen3-8b is generated beside it
#   bench8b   decode batch 1/32/128 + one 2,048-token prompt (qwen3-8b)
#   nopdl8b   the same decode batches and prompt with programmatic launches off (A/B in one call)
#   long8b    one 8,192-token prompt
#   ncu1, ncu32, ncuprefill   per-kernel time (eager) of batch-1 and batch-32 decode steps, of a 2,048-token prefill
#   small     qwen3-0.6b batch 1: graph step time vs the sum of its kernels
# Extra JVM flags for our engine: DS_FLAGS="-Ddistserve.cuda.x=y ..." (e.g. to compare a kernel switch in one call).
# Writes $OUT/perf_round.txt, $OUT/cuda_check.txt and the bench JSONs (ncu CSVs stay in /tmp there).
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/perf_round.txt"
steps=${1:-check,bench8b,nopdl8b,long8b,ncu1,ncu32,ncuprefill,small}
flags=(${DS_FLAGS:-})
JVMF=("$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g "${flags[@]}")
DSF=("${JVMF[@]}" -cp /tmp/distserve-app io.distserve.cli.DistServeCli)
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader; echo "flags: ${flags[*]}"; } | tee -a "$log"
gen() {  # shape
  [ -f "/tmp/$1/config.json" ] && return
  local t0=$SECONDS
  "${DS[@]}" model generate --shape "$1" --seed 1 --tokenizer "$TOKENIZER" --out "/tmp/$1" --log-level WARNING | tail -1 | tee -a "$log"
  echo "generated $1 in $((SECONDS - t0)) s" | tee -a "$log"
}
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
ncu_run() {  # name, shape, bench args...
  local name=$1 shape=$2; shift 2
  local t0=$SECONDS
  timeout 200 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    "${JVMF[@]}" -Ddistserve.cuda.graphs=false -cp /tmp/distserve-app io.distserve.cli.DistServeCli \
    bench engine --backend cuda --model "/tmp/$shape" "$@" --log-level WARNING \
    > "/tmp/ncu_$name.csv" 2> "/tmp/ncu_$name.err"
  echo "== ncu $name ($shape $*): rc $?, $((SECONDS - t0)) s" | tee -a "$log"
  tail -3 "/tmp/ncu_$name.err" | tee -a "$log"
  python3 gpu-engine/scripts/ncu_summary.py "/tmp/ncu_$name.csv" | tee -a "$log"
}
for step in ${steps//,/ }; do
  case $step in
    check)
      gen qwen3-8b > /tmp/gen.log 2>&1 &
      genpid=$!
      bash scripts/device/cuda_check.sh > /tmp/cuda_check.log 2>&1
      echo "== self-check: exit $?; $(grep -c PASS /tmp/cuda_check.log) PASS, $(grep -c FAIL /tmp/cuda_check.log) FAIL" | tee -a "$log"
      grep -E "FAIL|graph replay|ALL|checks" /tmp/cuda_check.log | head -20 | tee -a "$log"
      wait $genpid; cat /tmp/gen.log >> "$log"
      ;;
    bench8b|nopdl8b)
      gen qwen3-8b
      extra=(); [ "$step" = nopdl8b ] && extra=(-Ddistserve.cuda.pdl=false)
      echo "== $step: qwen3-8b decode (prompt 128, 64 new) and one 2,048-token prompt ${extra[*]}" | tee -a "$log"
      timeout 240 "${JVMF[@]}" "${extra[@]}" -cp /tmp/distserve-app io.distserve.cli.DistServeCli bench engine --backend cuda \
        --model /tmp/qwen3-8b --batch 1,32,128 --prompt-tokens 128 --new-tokens 64 --prefill 2048 \
        --json "$out/ours_$step.json" --log-level INFO 2>&1 | awk '!/ INFO /||/tuned in|tuning cache|programmatic/' | tee -a "$log"
      ;;
    long8b)
      gen qwen3-8b
      echo "== qwen3-8b: one 8,192-token prompt" | tee -a "$log"
      timeout 120 "${DSF[@]}" bench engine --backend cuda --model /tmp/qwen3-8b --batch 1 --prompt-tokens 16 \
        --new-tokens 2 --prefill 8192 --log-level WARNING 2>&1 | grep -E '^prefill|rror' | tee -a "$log"
      ;;
    ncu1) gen qwen3-8b; ncu_run decode1_8b qwen3-8b --batch 1 --prompt-tokens 128 --new-tokens 4 ;;
    ncu32) gen qwen3-8b; ncu_run decode32_8b qwen3-8b --batch 32 --prompt-tokens 128 --new-tokens 3 ;;
    ncuprefill) gen qwen3-8b; ncu_run prefill2048_8b qwen3-8b --batch 1 --prompt-tokens 2048 --new-tokens 2 ;;
    small)
      gen qwen3-0.6b
      echo "== bench qwen3-0.6b batch 1 (graphs)" | tee -a "$log"
      timeout 120 "${DSF[@]}" bench engine --backend cuda --model /tmp/qwen3-0.6b --batch 1 --prompt-tokens 128 \
        --new-tokens 64 --log-level WARNING 2>&1 | grep '^|' | tee -a "$log"
      ncu_run decode1_06b qwen3-0.6b --batch 1 --prompt-tokens 128 --new-tokens 4
      ;;
  esac
done
date -u | tee -a "$log"
