#!/usr/bin/env bash
# bench serving's CPU benchmark (issue 14): one rate sweep through the proxy for each setup on the same 2 cores,
#   Hybrid:    a proxy (--serving-strategy Hybrid, min_expected_latency) + 2 Hybrid engines
#   DistServe: a proxy (--serving-strategy DistServe) + 1 Prefill + 1 Decode engine
# every engine on the demo model (tiny, CPU backend, --threads 1: one core each), one setup at a time. The workload:
# random, input 512 tokens, output 64, Poisson arrivals, rates RATES (1,2,4,8,inf), NUM (80) requests per rate,
# SLOs SLO ("ttft:1000 tpot:50"). Writes it/bench-results/serving_{hybrid,distserve}.json and the plot
# it/bench-results/serving_sweep.png; prints both sweeps in one table. Needs routes/target/distserve.jar.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
jar=${DISTSERVE_JAR:-routes/target/distserve.jar}
rates=${RATES:-1,2,4,8,inf}
num=${NUM:-80}
slo=${SLO:-ttft:1000 tpot:50}
out=it/bench-results
mkdir -p "$out"
work=$(mktemp -d -t serving-sweep.XXXXXX)
model="$work/tiny"
java -jar "$jar" model generate --shape tiny --seed 0 --out "$model" --log-level WARNING
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap stop EXIT
wait_nodes() { # PROXY_PORT COUNT
  for _ in $(seq 1 300); do
    n=$(curl -s "http://127.0.0.1:$1/nodes/status" | python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["health"]=="HEALTHY"))' 2>/dev/null || echo 0)
    [ "$n" = "$2" ] && return 0; sleep 0.2
  done
  echo "nodes not healthy" >&2; exit 1
}
engine() { # NAME ROLE PROXY_PORT
  java -Xmx1g -jar "$jar" serve api_server "$model" --server-name 127.0.0.1 --server-port "$(free_port)" --role "$2" \
    --proxy-url "http://127.0.0.1:$3" --threads 1 --log-level WARNING > "$work/$1.log" 2>&1 &
  pids+=($!)
}
bench() { # LABEL PROXY_PORT EXTRA...
  local label=$1 port=$2; shift 2
  java -Xmx512m -jar "$jar" bench serving --base-url "http://127.0.0.1:$port" --tokenizer "$model" \
    --dataset random --input-len 512 --output-len 64 --num-prompts "$num" --sweep-rates "$rates" --seed 1 \
    --warmup 4 --goodput $slo --label "$label" --result-json "$out/serving_${label,,}.json" "$@" 2>/dev/null
}
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $(java -version 2>&1 | head -1)"
p=$(free_port)
java -Xmx512m -jar "$jar" serve proxy --server-name 127.0.0.1 --server-port "$p" --serving-strategy Hybrid \
  --routing-strategy min_expected_latency --node-table "$work/h.json" --log-level WARNING > "$work/proxy-h.log" 2>&1 &
pids+=($!)
engine hybrid-0 Hybrid "$p"; engine hybrid-1 Hybrid "$p"; wait_nodes "$p" 2
bench Hybrid "$p" > "$work/hybrid.txt"
stop
p=$(free_port)
java -Xmx512m -jar "$jar" serve proxy --server-name 127.0.0.1 --server-port "$p" --serving-strategy DistServe \
  --routing-strategy min_expected_latency --node-table "$work/d.json" --log-level WARNING > "$work/proxy-d.log" 2>&1 &
pids+=($!)
engine prefill Prefill "$p"; engine decode Decode "$p"; wait_nodes "$p" 2
bench DistServe "$p" --compare "$out/serving_hybrid.json" --plot "$out/serving_sweep.png" | tee "$work/distserve.txt" \
  | sed -n '/^| setup/,$p'
stop
echo "(full reports: $work/hybrid.txt, $work/distserve.txt)"
