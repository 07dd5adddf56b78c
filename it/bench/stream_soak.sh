#!/usr/bin/env bash
# Issue 16's soak: a DistServe proxy + 2 Prefill + 2 Decode engines (demo model, tiny, CPU), STREAMS (100) concurrent
# streaming completions at temperature 0, one Decode engine killed with SIGKILL KILL_AFTER (1.5) s in, once it is
# generating a quarter of the streams, plus half a second (mid-stream for them). Reports how many
# streams completed (200, [DONE], no error event), failed, and moved (the proxy's "moves on" lines, by request id),
# and what a move costs: end-to-end latency and the longest gap between two chunks, migrated streams against the
# others (p50, p99); then checks every text against the same request asked again of the surviving cluster, and that
# no KV block or lease is left on the survivors. Needs routes/target/distserve.jar. Not part of mvn verify.
# Also: MAX_TOKENS (200), PROMPT_WORDS (40), MAX_MIGRATIONS (2), OUT (it/bench-results).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
jar=${DISTSERVE_JAR:-routes/target/distserve.jar}
read -r -a ds <<< "${DS:-java -Xmx1g -jar $jar}"
streams=${STREAMS:-100}
kill_after=${KILL_AFTER:-1.5}
max_tokens=${MAX_TOKENS:-200}
prompt_words=${PROMPT_WORDS:-40}
out=${OUT:-it/bench-results}
mkdir -p "$out"
work=$(mktemp -d -t stream-soak.XXXXXX)
model=$work/tiny
"${ds[@]}" model generate --shape tiny --seed 0 --out "$model" --log-level WARNING
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT
printf 'distserve.proxy.maxMigrations = %s\n' "${MAX_MIGRATIONS:-2}" > "$work/proxy.properties"
proxy_port=$(free_port)
"${ds[@]}" serve proxy --server-name 127.0.0.1 --server-port "$proxy_port" --serving-strategy DistServe \
  --node-table "$work/nodes.json" --properties "$work/proxy.properties" --log-level INFO > "$work/proxy.log" 2>&1 &
pids+=($!)
victim_port=
for role in Prefill Prefill Decode Decode; do
  p=$(free_port)
  "${ds[@]}" serve api_server "$model" --server-name 127.0.0.1 --server-port "$p" --role "$role" \
    --proxy-url "http://127.0.0.1:$proxy_port" --cache-max-entry-count 0.2 --log-level WARNING \
    > "$work/$role-$p.log" 2>&1 &
  pids+=($!)
  if [ "$role" = Decode ] && [ -z "$victim_port" ]; then victim_port=$p; victim_pid=$!; fi
  ports+=("$role:$p")
done
for _ in $(seq 1 300); do
  n=$(python3 -c 'import json,sys,urllib.request as u; print(sum(1 for n in json.load(u.urlopen(sys.argv[1]))["nodes"] if n["health"]=="HEALTHY"))' "http://127.0.0.1:$proxy_port/nodes/status" 2>/dev/null || echo 0)
  [ "$n" = 4 ] && break; sleep 0.2
done
[ "$n" = 4 ] || { echo "nodes not healthy" >&2; exit 1; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $(java -version 2>&1 | head -1)"
echo "DistServe: proxy + 2 Prefill + 2 Decode (tiny, CPU), $streams streams x $max_tokens tokens at temperature 0, decode :$victim_port killed -9 after ${kill_after}s, maxMigrations ${MAX_MIGRATIONS:-2}"
python3 - "$proxy_port" "$streams" "$max_tokens" "$prompt_words" "$kill_after" "$victim_pid" "$work/proxy.log" \
  "$out/stream_soak.json" "$victim_port" "${ports[@]}" <<'PY'
import json, os, signal, statistics, sys, threading, time, http.client, urllib.request
port, n, max_tokens, words, kill_after, victim = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
proxy_log, result_json, victim_port, nodes = sys.argv[7], sys.argv[8], sys.argv[9], sys.argv[10:]
vocab = "sea ship port harbour rope sail wind tide north south east west storm calm fish net boat oar gull wave".split()
def body(i, stream):
    prompt = f"Story {i}: " + " ".join(vocab[(i * 7 + k * 3) % len(vocab)] for k in range(words))
    return json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": stream})
results = [None] * n
def run(i):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        c.request("POST", "/v1/completions", body(i, True), {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            results[i] = {"status": r.status, "error": r.read().decode()[:300], "e2e": time.monotonic() - t0}
            return
        text, rid, err, done, last, gap = [], None, None, False, None, 0.0
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            now = time.monotonic()
            if last is not None:
                gap = max(gap, now - last)
            last = now
            if payload == "[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            if "error" in chunk:
                err = chunk["error"].get("message", "")[:300]
                continue
            rid = rid or chunk.get("id")
            for ch in chunk.get("choices", []):
                text.append(ch.get("text") or "")
        results[i] = {"status": 200, "id": rid, "text": "".join(text), "error": err, "done": done,
                      "e2e": time.monotonic() - t0, "gap": gap}
    except Exception as e:
        results[i] = {"status": -1, "error": repr(e)[:300], "e2e": time.monotonic() - t0}
    finally:
        c.close()
threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
start = time.monotonic()
for t in threads:
    t.start()
# the kill comes KILL_AFTER s in, and not before the victim decodes a quarter of the streams (on 2 cores the first
# prefills take seconds): mid-stream for them
victim_url = f"http://127.0.0.1:{victim_port}"
while True:
    time.sleep(0.05)
    if time.monotonic() - start < kill_after:
        continue
    # generating, not merely routed there (a request before its first byte is only retried, not moved)
    m = urllib.request.urlopen(f"{victim_url}/metrics", timeout=5).read().decode()
    busy = [int(float(l.split()[-1])) for l in m.splitlines() if l.startswith("distserve_sequences_running ")]
    if (busy and busy[0] >= n // 4) or time.monotonic() - start > 60:
        break
time.sleep(0.5)
os.kill(victim, signal.SIGKILL)
killed_at = time.monotonic() - start
for t in threads:
    t.join()
wall = time.monotonic() - start
moved = {}
with open(proxy_log) as f:
    for line in f:
        if "moves on from prefill" in line:
            parts = line.split()
            k = parts.index("moves") - 2
            moved[parts[k]] = moved.get(parts[k], 0) + 1
ok = [r for r in results if r["status"] == 200 and r["done"] and not r["error"]]
failed = [r for r in results if r not in ok]
mig = [r for r in ok if r["id"] in moved]
rest = [r for r in ok if r["id"] not in moved]
# every text against the same request asked again (whole) of the cluster that is left
mismatch = 0
for i, r in enumerate(results):
    if r in ok:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        c.request("POST", "/v1/completions", body(i, False), {"Content-Type": "application/json"})
        a = json.loads(c.getresponse().read())
        c.close()
        mismatch += a["choices"][0]["text"] != r["text"]
def leftovers():
    left = []
    for node in nodes:
        role, p = node.split(":")
        try:
            m = urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5).read().decode()
        except Exception:
            continue  # the killed one
        for line in m.splitlines():
            if line.startswith(("distserve_kv_blocks_used ", "distserve_prefill_leases ")) and float(line.split()[-1]) != 0:
                left.append(f"{role}:{p} {line}")
    return left
deadline = time.monotonic() + 90  # a lease whose decode engine died with it expires (default 60 s)
left = leftovers()
while left and time.monotonic() < deadline:
    time.sleep(1)
    left = leftovers()
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")
print(f"killed after {killed_at:.2f} s (with {busy[0] if busy else '?'} streams on it); all streams ended after {wall:.1f} s")
print()
print("| streams | completed | migrated | failed | texts equal to an uninterrupted run | blocks/leases left |")
print("|---|---|---|---|---|---|")
print(f"| {n} | {len(ok)} | {len(mig)} | {len(failed)} | {len(ok) - mismatch} of {len(ok)} | {len(left)} |")
print()
print("| streams | count | e2e p50 s | e2e p99 s | longest chunk gap p50 ms | p99 ms |")
print("|---|---|---|---|---|---|")
for name, group in (("migrated", mig), ("not migrated", rest)):
    e2e = [r["e2e"] for r in group]
    gaps = [r["gap"] * 1000 for r in group]
    print(f"| {name} | {len(group)} | {pct(e2e, 50):.2f} | {pct(e2e, 99):.2f} | {pct(gaps, 50):.0f} | {pct(gaps, 99):.0f} |")
if mig and rest:
    print()
    print(f"added by a move: e2e p50 {pct([r['e2e'] for r in mig], 50) - pct([r['e2e'] for r in rest], 50):+.2f} s, "
          f"p99 {pct([r['e2e'] for r in mig], 99) - pct([r['e2e'] for r in rest], 99):+.2f} s; longest chunk gap p50 "
          f"{(pct([r['gap'] for r in mig], 50) - pct([r['gap'] for r in rest], 50)) * 1000:+.0f} ms, "
          f"p99 {(pct([r['gap'] for r in mig], 99) - pct([r['gap'] for r in rest], 99)) * 1000:+.0f} ms")
for r in failed[:5]:
    print("failed:", r.get("status"), r.get("error"))
for l in left:
    print("left:", l)
json.dump({"streams": n, "completed": len(ok), "migrated": len(mig), "failed": len(failed), "mismatch": mismatch,
           "left": left, "moves": moved, "results": [{k: v for k, v in r.items() if k != "text"} for r in results]},
          open(result_json, "w"), indent=1)
sys.exit(1 if failed or mismatch or left else 0)
PY
echo "(logs: $work)"
