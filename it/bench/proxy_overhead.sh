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
#   DISTSERVE_JAR (routes/target/distserve.jar), DURATION (15s per measurement), WARMUP (10s), CONNS (32), THREADS (2), PROXY_JAVA_OPTS (-Xmx512m)
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

# our proxy, Hybrid serving, the stub as its one node (default log level: one INFO line per request)
java $proxy_java_opts -jar "$jar" serve proxy --server-name 127.0.0.1 --server-port "$proxy_port" \
  --serving-strategy Hybrid --routing-strategy min_expected_latency --node-table "$work/nodes.json" \
  > "$work/proxy.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$proxy_port/health"
curl -sf -o /dev/null -X POST "http://127.0.0.1:$proxy_port/nodes/add" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$stub_port\",\"status\":{\"role\":\"Hybrid\",\"models\":[\"stub\"]}}"

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
for port in $check_ports; do
  out=$(curl -sf -X POST "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' -d "$body")
  case "$out" in *'"text_completion"'*) ;; *) echo "unexpected answer on $port: $out" >&2; exit 1 ;; esac
done

# wrk prints latencies as 123.45us / 1.23ms / 1.02s: in ms
to_ms() { python3 -c 'import sys,re
v=sys.argv[1]; m=re.match(r"([0-9.]+)(us|ms|s|m)$", v)
f={"us":0.001,"ms":1,"s":1000,"m":60000}[m.group(2)]; print("%.3f" % (float(m.group(1))*f))' "$1"; }
pct() { awk -v p="$2" '$1==p {print $2}' "$1"; }

declare -A p50 p99 rps
for target in $targets; do
  case $target in direct) port=$stub_port ;; nginx) port=$nginx_port ;; bare) port=$bare_port ;; proxy) port=$proxy_port ;; esac
  url="http://127.0.0.1:$port/v1/completions"
  wrk -t"$threads" -c"$conns" -d"$warmup" -s "$work/post.lua" "$url" > /dev/null
  wrk -t1 -c1 -d"$duration" --latency -s "$work/post.lua" "$url" > "$work/lat-$target.txt"
  wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/post.lua" "$url" > "$work/rps-$target.txt"
  for f in "$work/lat-$target.txt" "$work/rps-$target.txt"; do
    if grep -q "Non-2xx" "$f"; then echo "errors measuring $target: $(grep Non-2xx "$f")" >&2; exit 1; fi
  done
  p50[$target]=$(to_ms "$(pct "$work/lat-$target.txt" 50%)")
  p99[$target]=$(to_ms "$(pct "$work/lat-$target.txt" 99%)")
  rps[$target]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/rps-$target.txt")
done

added() { python3 -c 'import sys; print("%.3f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$1" "$2"; }
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print("%.2f" % (a/b) if b>0 else "n/a")' "$1" "$2"; }
add50_nginx=$(added "${p50[nginx]}" "${p50[direct]}")
add50_proxy=$(added "${p50[proxy]}" "${p50[direct]}")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "$(date -u +%Y-%m-%d) · $(nproc) cores, $cpu · $(java -version 2>&1 | head -1) · $(nginx -v 2>&1 | sed 's/.*: //') · $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
echo "latency: wrk -t1 -c1 -d$duration --latency; throughput: wrk -t$threads -c$conns -d$duration; after a $warmup warm-up each"
echo
echo "| path | p50 ms | p99 ms | added p50 ms | added p99 ms | max req/s |"
echo "|---|---|---|---|---|---|"
echo "| client -> stub (direct) | ${p50[direct]} | ${p99[direct]} | - | - | ${rps[direct]} |"
echo "| client -> nginx -> stub | ${p50[nginx]} | ${p99[nginx]} | $add50_nginx | $(added "${p99[nginx]}" "${p99[direct]}") | ${rps[nginx]} |"
if [ "$bare" = 1 ]; then
  echo "| client -> bare Vert.x proxy (no Camel) -> stub | ${p50[bare]} | ${p99[bare]} | $(added "${p50[bare]}" "${p50[direct]}") | $(added "${p99[bare]}" "${p99[direct]}") | ${rps[bare]} |"
fi
echo "| client -> distserve proxy (Hybrid) -> stub | ${p50[proxy]} | ${p99[proxy]} | $add50_proxy | $(added "${p99[proxy]}" "${p99[direct]}") | ${rps[proxy]} |"
echo
echo "added p50, proxy / nginx: $(ratio "$add50_proxy" "$add50_nginx") (goal: <= 2)"
