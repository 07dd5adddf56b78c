#!/usr/bin/env bash
# On the device machine: issue 19's benchmark in one call (device minutes are scarce; each step checks the time
# left and is skipped, saying so, when it would not fit the 10-minute limit of a call).
#   Here: scripts/device/pack.sh. There: `bash scripts/device/issue19_bench.sh` with carry [".carry"].
# 1. the self-check (scripts/device/cuda_check.sh) while qwen3-8b is generated beside it;
# 2. ours, qwen3-8b: decode batch 1 / 32 / 128 (prompt 128, 64 new) and one 2,048-token prompt with the defaults,
#    then (PDL_AB=1) batch 1 / 32 with programmatic launches on (the A/B of CUDA_NOTES section 11);
# 3. qwen3-0.6b batch 1, defaults (and, PDL_AB=1, programmatic launches on);
# 4. Nsight Compute: qwen3-8b batch-1 steps kernel by kernel (eager), to set against the graph step time;
# 5. transformers eager on the same weights (batch 1 / 32, 16 new; the 2,048-token prompt);
# 6. the tables: ours vs HF vs the roofline from the copy bandwidth and matmul rate measured in this run;
# 7. one 8,192-token prompt.
# NCU06=0 skips the 0.6b profile, HF=0 transformers (device minutes); PDL_AB=1 adds the programmatic-launch A/B.
# Writes $OUT/issue19.txt, $OUT/cuda_check.txt and the JSONs.
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/issue19.txt"
budget=${BUDGET_S:-570}
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit --format=csv,noheader; } | tee "$log"
JV=("$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g -cp /tmp/distserve-app io.distserve.cli.DistServeCli)
JVPDL=("$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g -Ddistserve.cuda.pdl=true -cp /tmp/distserve-app io.distserve.cli.DistServeCli)
fits() {  # seconds needed, what
  if (( SECONDS + $1 > budget )); then echo "== SKIPPED (time): $2" | tee -a "$log"; return 1; fi
}
gen() {  # shape
  [ -f "/tmp/$1/config.json" ] && return
  local t0=$SECONDS
  "${JV[@]}" model generate --shape "$1" --seed 1 --tokenizer "$TOKENIZER" --out "/tmp/$1" --log-level WARNING | tail -1
  echo "generated $1 in $((SECONDS - t0)) s"
}
bench() {  # label, java command array name, args...
  local label=$1; shift
  local -n cmd=$1; shift
  echo "== $label ($((SECONDS)) s into the call)" | tee -a "$log"
  timeout $((budget - SECONDS)) "${cmd[@]}" bench engine --backend cuda "$@" --log-level INFO 2>&1 \
    | awk '!/ INFO /||/tuned in|tuning cache|programmatic/' | tee -a "$log"
}

gen qwen3-8b > /tmp/gen8b.log 2>&1 &
genpid=$!
timeout ${CHECK_S:-180} bash scripts/device/cuda_check.sh > /tmp/cuda_check.log 2>&1
echo "== self-check: exit $? ($SECONDS s); $(grep -c ' PASS ' /tmp/cuda_check.log) rows PASS, $(grep -c ' FAIL' /tmp/cuda_check.log) FAIL" | tee -a "$log"
grep -E "FAIL|graph replay|repetition_penalty|CHECKS|CRASH" /tmp/cuda_check.log | cut -c1-230 | head -24 | tee -a "$log"
wait $genpid; cat /tmp/gen8b.log | tee -a "$log"

fits 120 "ours" && bench "ours qwen3-8b (defaults)" JV --model /tmp/qwen3-8b \
  --batch 1,32,128 --prompt-tokens 128 --new-tokens 64 --prefill 2048 --json "$out/ours_8b.json"
[ "${PDL_AB:-0}" = 1 ] && fits 50 "ours, programmatic launches on" && bench "ours qwen3-8b, programmatic launches ON" JVPDL --model /tmp/qwen3-8b \
  --batch 1,32 --prompt-tokens 128 --new-tokens 32 --json "$out/ours_8b_pdl.json"
if fits 50 "qwen3-0.6b"; then
  gen qwen3-0.6b | tee -a "$log"
  bench "ours qwen3-0.6b (defaults)" JV --model /tmp/qwen3-0.6b --batch 1 --prompt-tokens 128 --new-tokens 64
  [ "${PDL_AB:-0}" = 1 ] && fits 20 "qwen3-0.6b pdl" && bench "ours qwen3-0.6b, programmatic launches ON" JVPDL --model /tmp/qwen3-0.6b --batch 1 \
    --prompt-tokens 128 --new-tokens 64
fi
# ncu_steps NAME MODEL TIMEOUT: batch-1 steps, eager, kernel by kernel, summed per kernel
ncu_steps() {
  local ncu
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  echo "== ncu: $1 batch-1 steps, eager, kernel by kernel ($SECONDS s)" | tee -a "$log"
  timeout "$3" "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    "$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g -Ddistserve.cuda.graphs=false -cp /tmp/distserve-app \
    io.distserve.cli.DistServeCli bench engine --backend cuda --model "$2" --batch 1 --prompt-tokens 128 \
    --new-tokens 3 --log-level WARNING > "/tmp/ncu-$1.csv" 2> "/tmp/ncu-$1.err"
  echo "ncu rc $?" | tee -a "$log"
  python3 gpu-engine/scripts/ncu_summary.py "/tmp/ncu-$1.csv" 2>&1 | tee -a "$log"
}
fits 90 "ncu, qwen3-8b batch 1" && ncu_steps qwen3-8b /tmp/qwen3-8b 100
[ "${NCU06:-1}" = 1 ] && [ -f /tmp/qwen3-0.6b/config.json ] && fits 60 "ncu, qwen3-0.6b batch 1" \
  && ncu_steps qwen3-0.6b /tmp/qwen3-0.6b 50
if [ "${HF:-1}" = 1 ] && fits 100 "HF eager qwen3-8b"; then
  echo "== HF transformers eager, qwen3-8b ($SECONDS s)" | tee -a "$log"
  timeout $((budget - SECONDS - 20)) python3 gpu-engine/scripts/hf_bench.py /tmp/qwen3-8b --batches 1,32 --prompt 128 \
    --new 16 --prefill 2048 --json "$out/hf_qwen3-8b.json" 2>&1 | grep -v Warning | tee -a "$log"
fi
if [ -f "$out/ours_8b.json" ] && fits 20 "tables"; then
  hf=(); [ -f "$out/hf_qwen3-8b.json" ] && hf=(--hf "$out/hf_qwen3-8b.json")
  echo "== tables (defaults)" | tee -a "$log"
  python3 gpu-engine/scripts/bench_table.py --ours "$out/ours_8b.json" "${hf[@]}" --models /tmp/qwen3-8b --measure 2>&1 | tee -a "$log"
fi
# A/B of CUDA_NOTES section 13's norm tail: batch 1 with it off, then on again (the run-to-run spread)
JVNF=("$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g -Ddistserve.cuda.normFuse=false -cp /tmp/distserve-app io.distserve.cli.DistServeCli)
fits 40 "8b batch 1, norm tail off" && bench "ours qwen3-8b batch 1, norm tail OFF" JVNF --model /tmp/qwen3-8b --batch 1 \
  --prompt-tokens 128 --new-tokens 64
fits 40 "8b batch 1 again" && bench "ours qwen3-8b batch 1, defaults again" JV --model /tmp/qwen3-8b --batch 1 \
  --prompt-tokens 128 --new-tokens 64
[ -f /tmp/qwen3-0.6b/config.json ] && fits 20 "0.6b batch 1, norm tail off" && bench "ours qwen3-0.6b batch 1, norm tail OFF" \
  JVNF --model /tmp/qwen3-0.6b --batch 1 --prompt-tokens 128 --new-tokens 64
fits 45 "8,192-token prompt" && bench "ours qwen3-8b, one 8,192-token prompt" JV --model /tmp/qwen3-8b --batch 1 \
  --prompt-tokens 16 --new-tokens 2 --prefill 8192
echo "== done at $SECONDS s; $(date -u)" | tee -a "$log"
