#!/usr/bin/env bash
# Proxy overhead: the latency our proxy (serve proxy, Hybrid serving) adds in front of one engine, and its maximum
# requests per second, next to nginx as a plain reverse proxy in front of the same engine, in one run.
#
# The engine is it/src/test/java/io/distserve/it/EngineStub.java (answers a fixed OpenAI completion at once), so
# that what is measured is the proxy, not the model. Load: wrk (POST /v1/completions, a short non-stream request).
#   latency: 1 connection, one request at a time (p50, p99 from wrk --latency);
#   throughput: CONNS connections (default 32) on THREADS wrk threads (default 2);
#   added latency = via the proxy minus direct to the stub.
# A fourth row (BARE=0 to leave it out): the same stub behind a bare Vert.x reverse proxy (it/bench/BareVertxProxy.java:
# the same JVM, Vert.x and Netty, no Camel), the floor for a JVM proxy on this machine.
# Needs: JDK 17+, nginx and wrk (apt-get install -y nginx wrk), routes/target/distserve.jar (mvn -o -q install
# -DskipTests). Prints a markdown table (copied into it/BENCHMARKS.md). Not part of mvn verify.
#   DISTSERVE_JAR (routes/target/distserve.jar), BASELINE_JAR (none: a second proxy from another build, measured
#   beside it), DURATION (15s per measurement), WARMUP (10s), ROUNDS (3), CONNS (32), THREADS (2),
#   PROXY_JAVA_OPTS (-Xmx512m)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
jar=${DISTSERVE_JAR:-routes/target/distserve.jar}
duration=${DURATION:-15s}
warmup=${WARMUP:-10s}
conns=${CONNS:-32}
threads=${THREADS:-2}
proxy_java_opts=${PROXY_JAVA_OPTS:--Xmx512m}
for tool in java javac nginx wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y nginx wrk)" >&2; exit 1; }
done
[ -f "$jar" ] || { echo "no $jar: run mvn -o -q install -DskipTests first" >&2; exit 1; }

work=$(mktemp -d -t distserve-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
stub_port=$(free_port); proxy_port=$(free_port); nginx_port=$(free_port); bare_port=$(free_port)
bare=${BARE:-1}

wait_http() { # url
  for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "no answer from $1; logs in $work" >&2; exit 1
}

# the engine stub
javac -d "$work/classes" it/src/test/java/io/distserve/it/EngineStub.java
java -Xmx256m -cp "$work/classes" io.distserve.it.EngineStub "$stub_port" > "$work/stub.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$stub_port/health"

# the floor: a bare Vert.x proxy (no Camel)
if [ "$bare" = 1 ]; then
  javac -cp "$jar" -d "$work/classes" it/bench/BareVertxProxy.java
  java -Xmx512m -cp "$jar:$work/classes" BareVertxProxy "$bare_port" "$stub_port" > "$work/bare.log" 2>&1 &
  pids+=($!)
fi

# our proxy, Hybrid serving, the stub as its one node (default log level: one INFO line per request); with
# BASELINE_JAR, a second proxy from that jar beside it (the "before" of a change, measured in the same run)
start_proxy() { # name jar port
  java $proxy_java_opts -jar "$2" serve proxy --server-name 127.0.0.1 --server-port "$3" \
    --serving-strategy Hybrid --routing-strategy min_expected_latency --node-table "$work/nodes-$1.json" \
    > "$work/$1.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$3/health"
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$3/nodes/add" -H 'Content-Type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$stub_port\",\"status\":{\"role\":\"Hybrid\",\"models\":[\"stub\"]}}"
}
start_proxy proxy "$jar" "$proxy_port"
baseline=${BASELINE_JAR:-}
if [ -n "$baseline" ]; then
  before_port=$(free_port)
  start_proxy before "$baseline" "$before_port"
fi

# nginx as a plain reverse proxy (keep-alive to the upstream, access log on as by default)
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log $work/nginx/logs/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  upstream engine { server 127.0.0.1:$stub_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://engine;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/health"

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"stub","prompt":"Shanghai is a city that ","max_tokens":1,"temperature":0,"stream":false}'
wrk.headers["Content-Type"] = "application/json"
LUA
body='{"model":"stub","prompt":"Shanghai is a city that ","max_tokens":1,"temperature":0,"stream":false}'
targets="direct nginx proxy"
check_ports="$stub_port $nginx_port $proxy_port"
if [ "$bare" = 1 ]; then
  wait_http "http://127.0.0.1:$bare_port/health"
  targets="direct nginx bare proxy"
  check_ports="$check_ports $bare_port"
fi
if [ -n "$baseline" ]; then
  targets="$targets before"
  check_ports="$check_ports $before_port"
fi
for port in $check_ports; do
  out=$(curl -sf -X POST "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' -d "$body")
  case "$out" in *'"text_completion"'*) ;; *) echo "unexpected answer on $port: $out" >&2; exit 1 ;; esac
done

rounds=${ROUNDS:-3}

port_of() {
  case $1 in direct) echo "$stub_port" ;; nginx) echo "$nginx_port" ;; bare) echo "$bare_port" ;;
    proxy) echo "$proxy_port" ;; before) echo "$before_port" ;; esac
}
# every path warmed up first (the JVMs' JIT), then ROUNDS rounds that measure each path in turn, so that the
# machine's other load falls on all of them alike; the table gives the median over the rounds
for target in $targets; do
  wrk -t"$threads" -c"$conns" -d"$warmup" -s "$work/post.lua" "http://127.0.0.1:$(port_of "$target")/v1/completions" > /dev/null
done
for round in $(seq 1 "$rounds"); do
  for target in $targets; do
    url="http://127.0.0.1:$(port_of "$target")/v1/completions"
    wrk -t1 -c1 -d"$duration" --latency -s "$work/post.lua" "$url" > "$work/lat-$target-$round.txt"
    wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/post.lua" "$url" > "$work/rps-$target-$round.txt"
    for f in "$work/lat-$target-$round.txt" "$work/rps-$target-$round.txt"; do
      if grep -q "Non-2xx" "$f"; then echo "errors measuring $target: $(grep Non-2xx "$f")" >&2; exit 1; fi
    done
  done
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "$(date -u +%Y-%m-%d) · $(nproc) cores, $cpu · $(java -version 2>&1 | head -1) · $(nginx -v 2>&1 | sed 's/.*: //') · $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
echo "latency: wrk -t1 -c1 -d$duration --latency; throughput: wrk -t$threads -c$conns -d$duration; a $warmup warm-up each, then $rounds interleaved rounds (medians; added = minus direct in the same round)"
python3 - "$work" "$rounds" $targets <<'PY'
import re, statistics, sys
work, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
# wrk prints latencies as 123.45us / 1.23ms / 1.02s
unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
def ms(v):
    m = re.match(r"([0-9.]+)(us|ms|s|m)$", v)
    return float(m.group(1)) * unit[m.group(2)]
def pct(t, r, p):
    for line in open(f"{work}/lat-{t}-{r}.txt"):
        f = line.split()
        if f and f[0] == p:
            return ms(f[1])
def rps(t, r):
    for line in open(f"{work}/rps-{t}-{r}.txt"):
        if line.startswith("Requests/sec"):
            return float(line.split()[1])
rs = range(1, rounds + 1)
p50 = {t: [pct(t, r, "50%") for r in rs] for t in targets}
p99 = {t: [pct(t, r, "99%") for r in rs] for t in targets}
req = {t: [rps(t, r) for r in rs] for t in targets}
med = statistics.median
names = {"direct": "client -> stub (direct)", "nginx": "client -> nginx -> stub",
         "bare": "client -> bare Vert.x proxy (no Camel) -> stub",
         "proxy": "client -> distserve proxy (Hybrid) -> stub",
         "before": "client -> distserve proxy, BASELINE_JAR (Hybrid) -> stub"}
def added(t, p):
    return [a - d for a, d in zip(p[t], p["direct"])]
print()
print("| path | p50 ms | p99 ms | added p50 ms (per round) | added p99 ms | max req/s |")
print("|---|---|---|---|---|---|")
for t in targets:
    if t == "direct":
        print(f"| {names[t]} | {med(p50[t]):.3f} | {med(p99[t]):.3f} | - | - | {med(req[t]):.0f} |")
    else:
        a = added(t, p50)
        print(f"| {names[t]} | {med(p50[t]):.3f} | {med(p99[t]):.3f} | {med(a):.3f} ({', '.join('%.3f' % x for x in a)})"
              f" | {med(added(t, p99)):.3f} | {med(req[t]):.0f} |")
ng = added("nginx", p50)
for t in [t for t in targets if t in ("proxy", "before")]:
    a = added(t, p50)
    per = ", ".join("%.2f" % (x / n) if n > 0 else "n/a" for x, n in zip(a, ng))
    print()
    print(f"added p50, {t} / nginx: {med(a) / med(ng):.2f} (medians; per round {per}) (goal: <= 2)")
PY
