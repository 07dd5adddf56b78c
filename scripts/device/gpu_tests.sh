#!/usr/bin/env bash
# On the device machine: the JUnit tests that skip where there is no GPU (gpu-engine's io.distserve.engine.cuda
# package: kernels against references, CudaBackend against CpuBackend, prefix caching cached == uncached), run by the
# JUnit console launcher over the classes pack.sh carried. Here: scripts/device/pack.sh; there:
# `bash scripts/device/gpu_tests.sh [package-or-class]` with carry [".carry"]. Writes $OUT/gpu_tests.txt and the
# launcher's XML report; the exit code is the launcher's (0: all passed, and at least one test ran).
source scripts/device/env.sh
[ -d /tmp/distserve-gpu-tests ] || tar -C /tmp -xJf .carry/gpu-tests.tar.xz
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/gpu_tests.txt"
sel=${1:-io.distserve.engine.cuda}
if [[ "$sel" == *[A-Z]* ]]; then select=(--select-class "$sel"); else select=(--select-package "$sel"); fi
t=/tmp/distserve-gpu-tests
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader; } | tee "$log"
timeout 560 "$JAVA" -Xmx16g -XX:MaxDirectMemorySize=16g -jar "$t/junit-platform-console-standalone-1.11.4.jar" \
  execute --class-path "$t/classes:/tmp/distserve-app:$t/assertj-core-3.27.3.jar" "${select[@]}" \
  --fail-if-no-tests --details=tree --disable-banner --reports-dir="$out/reports" 2>&1 | grep -v " INFO " | tee -a "$log"
rc=${PIPESTATUS[0]}
echo "gpu_tests exit code: $rc" | tee -a "$log"
exit "$rc"
