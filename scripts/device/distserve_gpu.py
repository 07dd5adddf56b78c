#!/usr/bin/env python3
"""GPU DistServe on one GPU (issue 13), driven end to end: a Hybrid reference engine, a Prefill and a Decode engine
(all --backend cuda, three processes on one GPU with --cache-max-entry-count split between them) and two proxies in
front of the same Prefill/Decode pair: one with --migration-protocol NVLink, one with TCP. The commands are the ones
an LMDeploy user pastes (--backend pytorch, --migration-backend Mooncake / DLSlime, --link-type, --disable-gdr).

Checks, at temperature 0, that DistServe returns exactly the Hybrid engine's text (completions and chat, stream and
whole, prompts of 1, 63, 64, 65, 2048 and 8000 tokens) over each transport; times a 2,048-token prompt with 128 new
tokens through DistServe (nvlink) against Hybrid; then kills the decode engine mid-stream (SSE error, then [DONE];
the prefill engine's leased blocks back to 0). Prints one table; writes JSON and the engines' log tails under --out.

Usage: distserve_gpu.py --model DIR --out DIR [--name NAME] -- JAVA_AND_ARGS_OF_THE_DISTSERVE_CLI...
Stdlib only (the device machine has no extra packages for us).
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time

LENGTHS = [1, 63, 64, 65, 2048, 8000]
NEW_TOKENS = 16
WORDS = ("river mountain garden window silver morning thunder candle harbor meadow lantern velvet orchard "
         "compass whisper marble falcon ember glacier prairie").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, ds, model, name, out):
        self.ds, self.model, self.name, self.out = ds, model, name, out
        self.procs = {}

    def start(self, key, args, log_name):
        log = open(os.path.join(self.out, log_name), "w")
        p = subprocess.Popen(self.ds + args, stdout=log, stderr=subprocess.STDOUT, start_new_session=False)
        self.procs[key] = (p, log)
        return p

    def engine(self, key, port, role, extra):
        return self.start(key, ["serve", "api_server", self.model, "--model-name", self.name, "--server-name",
                                "127.0.0.1", "--server-port", str(port), "--role", role, "--log-level", "INFO"] + extra,
                          f"{self.name}-{key}.log")

    def stop(self, key, sig=signal.SIGTERM):
        p, log = self.procs.pop(key)
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()

    def stop_all(self):
        for key in list(self.procs):
            self.stop(key)


def http_json(port, method, path, body=None, timeout=300):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=None if body is None else json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        try:
            return r.status, (json.loads(data) if data else None)
        except ValueError:
            return r.status, {"raw": data[:300].decode(errors="replace")}
    finally:
        c.close()


def wait_healthy(port, procs, what, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for key, (p, _) in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{key} exited with {p.returncode} while waiting for {what}")
        try:
            status, _ = http_json(port, "GET", "/health", timeout=5)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} on :{port} not healthy after {timeout} s")


def sse_events(r):
    """The data events of an SSE answer, as JSON objects, and "[DONE]"; ends at EOF."""
    while True:
        line = r.fp.readline()
        if not line:
            return
        line = line.strip()
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            yield "[DONE]" if payload == b"[DONE]" else json.loads(payload)


def completion(port, path, body, stream):
    """One request; returns (text, usage, ttft_s, second_s, total_s, events, error)."""
    body = dict(body, stream=stream)
    if stream:
        body["stream_options"] = {"include_usage": True}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.perf_counter()
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        data = r.read()
        c.close()
        return None, None, None, None, None, [], f"HTTP {r.status}: {data[:300]!r}"
    if not stream:
        data = json.loads(r.read())
        total = time.perf_counter() - t0
        c.close()
        ch = data["choices"][0]
        text = ch["message"]["content"] if "message" in ch else ch["text"]
        return text, data.get("usage"), None, None, total, [], None
    text, usage, times, events, error = "", None, [], [], None
    for ev in sse_events(r):
        if ev == "[DONE]":
            events.append("[DONE]")
            break
        if "error" in ev:
            events.append("error")
            error = ev["error"].get("message")
            continue
        if ev.get("usage"):
            usage = ev["usage"]
        for ch in ev.get("choices", []):
            piece = ch.get("text") if "text" in ch else (ch.get("delta") or {}).get("content")
            if piece:
                text += piece
                times.append(time.perf_counter() - t0)
        events.append("chunk")
    total = time.perf_counter() - t0
    c.close()
    ttft = times[0] if times else None
    second = times[1] if len(times) > 1 else None
    return text, usage, ttft, second, total, events, error


VOCAB = [1000, 100000]  # token ids drawn for completions prompts; narrowed to the model's vocabulary in main()


def prompts(length, rnd):
    ids = [rnd.randrange(VOCAB[0], VOCAB[1]) for _ in range(length)]
    words = " ".join(rnd.choice(WORDS) for _ in range(max(1, length - 10)))
    return ids, words


def request_body(name, kind, length, rnd, max_tokens=NEW_TOKENS):
    ids, words = prompts(length, rnd)
    common = {"model": name, "temperature": 0, "max_tokens": max_tokens, "ignore_eos": True}
    if kind == "completions":
        return "/v1/completions", dict(common, prompt=ids)
    return "/v1/chat/completions", dict(common, messages=[{"role": "user", "content": words}])


def main():
    global LENGTHS
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="m")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backend", default="cuda", help="cpu: a dry run of this script on a machine without a GPU")
    ap.add_argument("--lengths", default="1,63,64,65,2048,8000")
    ap.add_argument("--protocols", default="nvlink,tcp", help="the proxies to run: nvlink and/or tcp")
    ap.add_argument("--bench-prompt", type=int, default=2048)
    ap.add_argument("ds", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    ds = a.ds[1:] if a.ds and a.ds[0] == "--" else a.ds
    LENGTHS = [int(x) for x in a.lengths.split(",")]
    with open(os.path.join(a.model, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    VOCAB[1] = min(VOCAB[1], int(vocab * 0.9))  # special tokens sit at the top of the vocabulary
    VOCAB[0] = min(VOCAB[0], VOCAB[1] // 4)
    protocols = a.protocols.split(",")
    gpu = a.backend == "cuda"
    shape = os.path.basename(a.model.rstrip("/"))
    cl = Cluster(ds, a.model, a.name, a.out)
    ports = {k: free_port() for k in ("hybrid", "prefill", "decode", "proxy_nvlink", "proxy_tcp", "proxy_hybrid")}
    results = {"shape": shape, "matrix": [], "bench": {}, "kill": {}}
    t_start = time.time()
    try:
        # one after another: each engine takes its share of the memory the previous ones left free
        cl.engine("hybrid", ports["hybrid"], "Hybrid", ["--backend", a.backend, "--cache-max-entry-count", "0.12"])
        wait_healthy(ports["hybrid"], cl.procs, "hybrid engine")
        cl.start("proxy_nvlink", ["serve", "proxy", "--server-name", "127.0.0.1", "--server-port",
                                  str(ports["proxy_nvlink"]), "--routing-strategy", "min_expected_latency",
                                  "--serving-strategy", "DistServe", "--migration-protocol", "NVLink" if gpu else "AUTO",
                                  "--log-level", "INFO", "--node-table", os.path.join(a.out, "nodes-nv.json")],
                 f"{shape}-proxy-nvlink.log")
        cl.start("proxy_tcp", ["serve", "proxy", "--server-name", "127.0.0.1", "--server-port", str(ports["proxy_tcp"]),
                               "--routing-strategy", "min_expected_latency", "--serving-strategy", "DistServe",
                               "--migration-protocol", "TCP", "--link-type", "RoCE", "--disable-gdr",
                               "--log-level", "INFO", "--node-table", os.path.join(a.out, "nodes-tcp.json")],
                 f"{shape}-proxy-tcp.log")
        # the Hybrid engine behind a proxy of its own: the same hop as DistServe's, for a fair latency comparison
        cl.start("proxy_hybrid", ["serve", "proxy", "--server-name", "127.0.0.1", "--server-port",
                                  str(ports["proxy_hybrid"]), "--serving-strategy", "Hybrid",
                                  "--node-table", os.path.join(a.out, "nodes-h.json")], f"{shape}-proxy-hybrid.log")
        wait_healthy(ports["proxy_hybrid"], cl.procs, "hybrid proxy")
        status, body = http_json(ports["proxy_hybrid"], "POST", "/nodes/add",
                                 {"url": f"http://127.0.0.1:{ports['hybrid']}",
                                  "status": {"role": "Hybrid", "models": [a.name]}})
        assert status == 200, body
        proxy_url = f"http://127.0.0.1:{ports['proxy_nvlink']}"
        cl.engine("prefill", ports["prefill"], "Prefill", ["--proxy-url", proxy_url, "--backend", "pytorch" if gpu else "cpu",
                                                            "--migration-backend", "Mooncake",
                                                            "--cache-max-entry-count", "0.12"])
        wait_healthy(ports["prefill"], cl.procs, "prefill engine")
        cl.engine("decode", ports["decode"], "Decode", ["--proxy-url", proxy_url, "--backend", a.backend,
                                                         "--migration-backend", "DLSlime",
                                                         "--cache-max-entry-count", "0.15"])
        wait_healthy(ports["decode"], cl.procs, "decode engine")
        for role in ("prefill", "decode"):
            status, body = http_json(ports["proxy_tcp"], "POST", "/nodes/add",
                                     {"url": f"http://127.0.0.1:{ports[role]}",
                                      "status": {"role": role.capitalize(), "models": [a.name]}})
            assert status == 200, body
        for p in ("proxy_nvlink", "proxy_tcp"):
            deadline = time.time() + 60
            while True:
                _, st = http_json(ports[p], "GET", "/nodes/status")
                healthy = [n for n in st["nodes"] if str(n.get("health")).upper() == "HEALTHY"]
                if len(healthy) >= 2 or time.time() > deadline:
                    break
                time.sleep(0.5)
        info = {r: http_json(ports[r], "GET", "/distserve/engine_info")[1] for r in ("prefill", "decode")}
        results["engine_info"] = {r: {k: info[r].get(k) for k in ("transports", "gpu", "host_id", "num_blocks")}
                                  for r in info}
        print(f"[{shape}] engines up in {time.time() - t_start:.0f} s; offers: "
              f"prefill {info['prefill']['transports']}, decode {info['decode']['transports']}", flush=True)

        # --- equivalence matrix
        reference = {}
        for kind in ("completions", "chat"):
            for length in LENGTHS:
                rnd = random.Random(f"{kind}-{length}")
                path, body = request_body(a.name, kind, length, rnd)
                for stream in (False, True):
                    reference[(kind, length, stream)] = (path, body, completion(ports["hybrid"], path, body, stream))
        for proto in protocols:
            port = ports["proxy_" + proto]
            for (kind, length, stream), (path, body, ref) in reference.items():
                got = completion(port, path, body, stream)
                ok = got[6] is None and ref[6] is None and got[0] == ref[0] and (
                        got[1] or {}).get("completion_tokens") == (ref[1] or {}).get("completion_tokens")
                row = {"protocol": proto, "kind": kind, "prompt": length, "stream": stream, "match": ok,
                       "prompt_tokens": (ref[1] or {}).get("prompt_tokens"),
                       "completion_tokens": (got[1] or {}).get("completion_tokens")}
                if not ok:
                    row.update(hybrid=ref[0], distserve=got[0], error=got[6] or ref[6])
                results["matrix"].append(row)
                if not ok:
                    print(f"[{shape}] MISMATCH {row}", flush=True)
        streams_whole = all(reference[(k, n, False)][2][0] == reference[(k, n, True)][2][0]
                            for k in ("completions", "chat") for n in LENGTHS)
        results["hybrid_stream_equals_whole"] = streams_whole

        # --- the end-to-end price: 2,048-token prompt, 128 new tokens, DistServe (nvlink) vs Hybrid
        rnd = random.Random("bench")
        path, body = request_body(a.name, "completions", a.bench_prompt, rnd, max_tokens=128)
        one = dict(body, max_tokens=1)
        times = []
        for i in range(a.runs + 1):
            t0 = time.perf_counter()
            status, answer = http_json(ports["prefill"], "POST", path, dict(one, stream=False))
            times.append(time.perf_counter() - t0)
            hand_off = answer["distserve"]  # nobody pulls this one: end its lease as a decode engine would
            http_json(ports["prefill"], "POST", "/distserve/free_cache",
                      {"remote_engine_id": hand_off["engine_id"], "remote_session_id": hand_off["session_id"]})
        results["bench"]["prefill_direct_whole_max1_ms"] = statistics.median(times[1:]) * 1e3
        completion(ports["hybrid"], path, one, False)
        results["bench"]["hybrid_direct_whole_max1_ms"] = statistics.median(
            completion(ports["hybrid"], path, one, False)[4] for _ in range(a.runs)) * 1e3
        for label, port in (("hybrid", ports["hybrid"]), ("hybrid_via_proxy", ports["proxy_hybrid"]),
                            ("distserve_nvlink", ports["proxy_nvlink"]), ("distserve_tcp", ports["proxy_tcp"])):
            completion(port, path, body, True)  # warm-up
            runs = [completion(port, path, body, True) for _ in range(a.runs)]
            results["bench"][label] = {
                "ttft_ms": statistics.median(r[2] for r in runs) * 1e3,
                "second_token_ms": statistics.median(r[3] for r in runs) * 1e3,
                "total_ms": statistics.median(r[4] for r in runs) * 1e3}
        _, metrics = None, None
        c = http.client.HTTPConnection("127.0.0.1", ports["decode"], timeout=30)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        results["decode_metrics"] = [line for line in text.splitlines() if line.startswith("kv_migration_")
                                     and ("_count" in line or "_total" in line or "_sum" in line)]

        # --- kill the decode engine mid-stream
        rnd = random.Random("kill")
        path, body = request_body(a.name, "completions", 300, rnd, max_tokens=3000)
        body = dict(body, stream=True)
        cc = http.client.HTTPConnection("127.0.0.1", ports["proxy_nvlink"], timeout=120)
        cc.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = cc.getresponse()
        events, chunks, killed = [], 0, False
        for ev in sse_events(r):
            if ev == "[DONE]":
                events.append("[DONE]")
                break
            events.append("error" if "error" in ev else "chunk")
            chunks += 1
            if chunks == 30 and not killed:
                cl.procs["decode"][0].kill()
                killed = True
        else:
            events.append("EOF")
        cc.close()
        tail = [e for e in events if e != "chunk"]
        deadline = time.time() + 15
        while True:
            _, pinfo = http_json(ports["prefill"], "GET", "/distserve/engine_info")
            if (pinfo["leases"] == 0 and pinfo["leased_blocks"] == 0) or time.time() > deadline:
                break
            time.sleep(0.2)
        results["kill"] = {"chunks_before_end": chunks, "stream_end": tail,
                           "ok": tail[-2:] == ["error", "[DONE]"] and pinfo["leased_blocks"] == 0,
                           "prefill_leases_after": pinfo["leases"], "prefill_leased_blocks_after": pinfo["leased_blocks"]}
    finally:
        cl.stop_all()
        with open(os.path.join(a.out, f"{shape}-results.json"), "w") as f:
            json.dump(results, f, indent=1)

    m = results["matrix"]
    print(f"\n## {shape}: DistServe (proxy + Prefill + Decode, {a.backend}, one machine) vs Hybrid ({a.backend}), "
          f"temperature 0, "
          f"{NEW_TOKENS} new tokens")
    print("| transport | request | stream | " + " | ".join(f"{n} tok" for n in LENGTHS) + " |")
    print("|---|---|---|" + "---:|" * len(LENGTHS))
    for proto in protocols:
        for kind in ("completions", "chat"):
            for stream in (False, True):
                cells = []
                for n in LENGTHS:
                    row = next(r for r in m if r["protocol"] == proto and r["kind"] == kind and r["prompt"] == n
                               and r["stream"] == stream)
                    cells.append(("same" if row["match"] else "DIFF") + f" ({row['prompt_tokens']})")
                print(f"| {proto} | {kind} | {'yes' if stream else 'no'} | " + " | ".join(cells) + " |")
    same = sum(r["match"] for r in m)
    print(f"\n{same} of {len(m)} DistServe answers equal Hybrid's (cells: result (prompt tokens)); Hybrid's stream "
          f"equals its whole answer: {results['hybrid_stream_equals_whole']}")
    b = results["bench"]
    print("\n| %d-token prompt, 128 new tokens (median of %d) | TTFT ms | 2nd token ms | total ms |"
          % (a.bench_prompt, a.runs))
    print("|---|---:|---:|---:|")
    for label in ("hybrid", "hybrid_via_proxy", "distserve_nvlink", "distserve_tcp"):
        print(f"| {label} | {b[label]['ttft_ms']:.1f} | {b[label]['second_token_ms']:.1f} | {b[label]['total_ms']:.1f} |")
    print(f"whole answers of max_tokens 1 (the prefill's share): prefill engine {b['prefill_direct_whole_max1_ms']:.1f} "
          f"ms, hybrid engine {b['hybrid_direct_whole_max1_ms']:.1f} ms")
    for ref in ("hybrid", "hybrid_via_proxy"):
        h, d = b[ref], b["distserve_nvlink"]
        print(f"DistServe (nvlink) vs {ref}: TTFT {100 * (d['ttft_ms'] / h['ttft_ms'] - 1):+.1f}%, 2nd token "
              f"(first token + migration) {100 * (d['second_token_ms'] / h['second_token_ms'] - 1):+.1f}%, total "
              f"{100 * (d['total_ms'] / h['total_ms'] - 1):+.1f}%")
    print("decode engine metrics:", "; ".join(results.get("decode_metrics", [])))
    k = results["kill"]
    print(f"kill decode mid-stream: {'OK' if k.get('ok') else 'FAILED'} (stream ended {k.get('stream_end')}, "
          f"prefill leased blocks after: {k.get('prefill_leased_blocks_after')})")
    return 0 if same == len(m) and k.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
