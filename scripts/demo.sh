#!/usr/bin/env bash
# One command, a local DistServe cluster: a proxy (DistServe serving) + one Prefill + one Decode engine, CPU
# backend, on the built-in demo model (a seeded random-weight "tiny" Qwen3 with a byte-level tokenizer: it answers
# fluently in nonsense — point the engines at a real checkpoint for real text). Ctrl-C stops all of it.
#   PROXY_PORT (8000), PREFILL_PORT (23333), DECODE_PORT (23334), DISTSERVE_DEMO_MODEL (~/.cache/distserve/tiny)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jar=routes/target/distserve.jar
proxy_port=${PROXY_PORT:-8000}
prefill_port=${PREFILL_PORT:-23333}
decode_port=${DECODE_PORT:-23334}
model=${DISTSERVE_DEMO_MODEL:-$HOME/.cache/distserve/tiny}
java_opts=${JAVA_OPTS:--Xmx768m}

if [ ! -f "$jar" ]; then
  echo "building $jar (first run only) ..."
  mvn -B -q -ntp -DskipTests package
fi
if [ ! -f "$model/config.json" ]; then
  java -jar "$jar" model generate --shape tiny --seed 0 --out "$model" --log-level WARNING
fi

logs=$(mktemp -d -t distserve-demo.XXXXXX)
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping the cluster ..."
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped (logs in $logs)"
}
trap stop INT TERM EXIT

java $java_opts -jar "$jar" serve proxy --server-name 127.0.0.1 --server-port "$proxy_port" \
  --routing-strategy min_expected_latency --serving-strategy DistServe --node-table "$logs/nodes.json" \
  > "$logs/proxy.log" 2>&1 &
pids+=($!)
java $java_opts -jar "$jar" serve api_server "$model" --server-name 127.0.0.1 --server-port "$prefill_port" \
  --role Prefill --proxy-url "http://127.0.0.1:$proxy_port" --backend cpu > "$logs/prefill.log" 2>&1 &
pids+=($!)
java $java_opts -jar "$jar" serve api_server "$model" --server-name 127.0.0.1 --server-port "$decode_port" \
  --role Decode --proxy-url "http://127.0.0.1:$proxy_port" --backend cpu > "$logs/decode.log" 2>&1 &
pids+=($!)

echo "starting proxy :$proxy_port, prefill :$prefill_port, decode :$decode_port (logs in $logs) ..."
for _ in $(seq 1 240); do
  healthy=$(curl -s "http://127.0.0.1:$proxy_port/health" 2>/dev/null | sed -n 's/.*"healthy_nodes":\([0-9]*\).*/\1/p' || true)
  [ "${healthy:-0}" -ge 2 ] && break
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "a server exited; see $logs"; tail -5 "$logs"/*.log; exit 1; }
  done
  sleep 0.5
done
[ "${healthy:-0}" -ge 2 ] || { echo "the cluster did not come up; see $logs"; exit 1; }

name=$(basename "$model")
cat <<MSG

DistServe cluster ready: proxy http://127.0.0.1:$proxy_port -> Prefill :$prefill_port -> (KV over TCP) -> Decode :$decode_port

  curl -X POST http://127.0.0.1:$proxy_port/v1/completions -H 'Content-Type: application/json' \\
    -d '{"model":"$name","temperature":0,"prompt":"Shanghai is a city that ","max_tokens":16,"stream":false}'

  curl -N -X POST http://127.0.0.1:$proxy_port/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"$name","messages":[{"role":"user","content":"Hello!"}],"max_tokens":16,"stream":true}'

  curl http://127.0.0.1:$proxy_port/nodes/status

Ctrl-C stops all of it.
MSG
wait
