#!/usr/bin/env bash
# bench serving's own cost: its client against a server that answers at once (it/bench/InstantSseServer.java, in its
# own JVM), so that what is measured is the client: the request rate it keeps, its TTFT floor, its CPU per request and
# per token. Prints the table that it/BENCHMARKS.md quotes. Needs routes/target/distserve.jar (mvn -o -q install
# -DskipTests). TOKENS (64) text chunks per answer. Not part of mvn verify.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
jar=${DISTSERVE_JAR:-routes/target/distserve.jar}
tokens=${TOKENS:-64}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
java -Xmx256m -cp "$jar" it/bench/InstantSseServer.java "$port" "$tokens" > /tmp/instant-sse.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening /tmp/instant-sse.log 2>/dev/null && break; sleep 0.2; done
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $(java -version 2>&1 | head -1); $tokens text chunks per answer"
java -Xmx512m -cp "$jar" it/bench/ClientOverhead.java "$port" "$tokens" 2>&1 | grep -v " INFO "
