#!/usr/bin/env bash
# Prefix caching and kv_aware routing on the CPU (issue 15). Three setups, one after the other on the same cores, each
# a proxy (Hybrid) + 2 Hybrid engines (demo model, tiny, CPU backend, --threads 1) started fresh:
#   off:      --no-enable-prefix-caching, --routing-strategy min_expected_latency
#   on+mel:   prefix caching on (the default), min_expected_latency
#   on+kv:    prefix caching on, --routing-strategy kv_aware
# The workload: bench serving --dataset prefix-repeat: PREFIXES (16) system prompts of PREFIX_LEN (1024) tokens,
# request i uses prefix i % PREFIXES and a unique 64-token suffix, output 16 tokens, NUM (64) requests (each prefix 4
# times), Poisson arrivals at RATE (4) req/s, no warmup (a warmup request would cache a prefix before the run).
# Prefill tokens computed = prompt tokens - cached tokens (usage.prompt_tokens_details, summed by the client); the
# possible hits are every occurrence of a prefix but its first: (NUM - PREFIXES) * PREFIX_LEN.
# Writes it/bench-results/prefix_cache_{off,on_mel,on_kv}_rateRATE.json and prints one table. Needs routes/target/distserve.jar.
# Elsewhere (the GPU run, scripts/device/distserve_gpu.sh prefix): MODEL=DIR (a model folder instead of the demo
# model), DS="cmd..." (the distserve command), ENGINE_FLAGS (e.g. "--backend cuda --cache-max-entry-count 0.4"),
# INPUT_LEN, OUTPUT_LEN, OUT (the results folder).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
jar=${DISTSERVE_JAR:-routes/target/distserve.jar}
read -r -a ds <<< "${DS:-java -Xmx1g -jar $jar}"
engine_flags=${ENGINE_FLAGS:---threads 1}
input_len=${INPUT_LEN:-64}
output_len=${OUTPUT_LEN:-16}
rate=${RATE:-4}
num=${NUM:-64}
prefixes=${PREFIXES:-16}
prefix_len=${PREFIX_LEN:-1024}
out=${OUT:-it/bench-results}
mkdir -p "$out"
work=$(mktemp -d -t prefix-cache.XXXXXX)
model=${MODEL:-$work/tiny}
[ -f "$model/config.json" ] || "${ds[@]}" model generate --shape tiny --seed 0 --out "$model" --log-level WARNING
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap stop EXIT
wait_nodes() { # PROXY_PORT COUNT
  for _ in $(seq 1 300); do
    n=$(python3 -c 'import json,sys,urllib.request as u; print(sum(1 for n in json.load(u.urlopen(sys.argv[1]))["nodes"] if n["health"]=="HEALTHY"))' "http://127.0.0.1:$1/nodes/status" 2>/dev/null || echo 0)
    [ "$n" = "$2" ] && return 0; sleep 0.2
  done
  echo "nodes not healthy" >&2; exit 1
}
run() { # NAME ROUTING CACHE_FLAG
  local name=$1 routing=$2 cache=$3 p
  p=$(free_port)
  "${ds[@]}" serve proxy --server-name 127.0.0.1 --server-port "$p" --serving-strategy Hybrid \
    --routing-strategy "$routing" --node-table "$work/$name.json" --log-level INFO > "$work/proxy-$name.log" 2>&1 &
  pids+=($!)
  for i in 0 1; do
    # shellcheck disable=SC2086 # the flags are words
    "${ds[@]}" serve api_server "$model" --server-name 127.0.0.1 --server-port "$(free_port)" \
      --proxy-url "http://127.0.0.1:$p" $engine_flags $cache --log-level WARNING > "$work/$name-$i.log" 2>&1 &
    pids+=($!)
  done
  wait_nodes "$p" 2
  if [ "$routing" = kv_aware ]; then # the proxy fetches the model's tokenizer from an engine once
    for _ in $(seq 1 100); do grep -q "loaded the tokenizer" "$work/proxy-$name.log" && break; sleep 0.1; done
  fi
  "${ds[@]}" bench serving --base-url "http://127.0.0.1:$p" --tokenizer "$model" \
    --dataset prefix-repeat --prefix-count "$prefixes" --prefix-len "$prefix_len" --input-len "$input_len" --output-len "$output_len" \
    --num-prompts "$num" --request-rate "$rate" --seed 1 --warmup 0 --label "$name" \
    --result-json "$out/prefix_cache_${name}_rate$rate.json" > "$work/$name.txt" 2>/dev/null
  stop
}
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $("${ds[0]}" -version 2>&1 | head -1)"
echo "prefix-repeat: $prefixes prefixes x $prefix_len tokens, suffix $input_len, output $output_len, $num requests, Poisson $rate req/s, 2 Hybrid engines ($engine_flags) on $(basename "$model")"
run off min_expected_latency --no-enable-prefix-caching
run on_mel min_expected_latency ""
run on_kv kv_aware ""
python3 - "$out" "$num" "$prefixes" "$prefix_len" "$rate" <<'PY'
import json, sys
out, num, k, plen, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
possible = (num - k) * plen
rows = [("off", "caching off, min_expected_latency"), ("on_mel", "caching on, min_expected_latency"),
        ("on_kv", "caching on, kv_aware")]
base = None
print("| setup | mean TTFT ms | median | p99 | prefill tokens computed | cached tokens | hit rate of possible | TTFT vs off |")
print("|---|---|---|---|---|---|---|---|")
for key, name in rows:
    r = json.load(open(f"{out}/prefix_cache_{key}_rate{rate}.json"))["runs"][0]
    t = r["ttftMs"]
    base = base or t["mean"]
    computed = r["inputTokens"] - r["cachedTokens"]
    print(f"| {name} | {t['mean']:.1f} | {t['median']:.1f} | {t['p99']:.1f} | {computed:,} | {r['cachedTokens']:,} | "
          f"{100.0 * r['cachedTokens'] / possible:.0f}% | {base / t['mean']:.2f}x lower |"
          + ("" if r["failed"] == 0 else f" ({r['failed']} failed)"))
PY
echo "(reports and logs: $work)"
