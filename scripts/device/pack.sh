#!/usr/bin/env bash
# Here (no GPU): build and pack what a device run needs into .carry/ (ignored by git, named in `carry`), within
# the 64 MiB a call may carry:
#   .carry/jre.tar.xz        a jlink'd Java 17 runtime (the GPU machines have no Java)
#   .carry/app.tar.xz        the distserve jar, unpacked (xz over raw classes packs ~2x better than the jar)
#   .carry/tokenizer.tar.xz  ../shared/models/qwen3-tokenizer (../shared does not travel)
#   .carry/gpu-tests.tar.xz  gpu-engine's test classes with the JUnit console launcher (scripts/device/gpu_tests.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mkdir -p .carry
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  mvn -B -q -ntp -o -DskipTests package
fi
rm -rf /tmp/distserve-app && mkdir -p /tmp/distserve-app
(cd /tmp/distserve-app && unzip -q "$root/routes/target/distserve.jar")
# The device machines are linux-x86_64: drop the other platforms' native libraries.
(cd /tmp/distserve-app && rm -rf native/lib/win-* native/lib/osx-* native/lib/linux-aarch64 \
  com/sun/jna/aix-* com/sun/jna/darwin-* com/sun/jna/freebsd-* com/sun/jna/openbsd-* com/sun/jna/sunos-* \
  com/sun/jna/win32-* com/sun/jna/linux-[!x]* \
  lib/libJNvPTXCompiler-* lib/libJNvrtc-* lib/libJCudaRuntime-*)
# The GPU benchmark mains of kv-transfer live in its test classes (not in the jar).
mkdir -p /tmp/distserve-app/io/distserve/kv/bench
cp kv-transfer/target/test-classes/io/distserve/kv/bench/*.class /tmp/distserve-app/io/distserve/kv/bench/
cp kv-transfer/target/test-classes/io/distserve/kv/cuda/GatherSweep*.class /tmp/distserve-app/io/distserve/kv/cuda/
tar -C /tmp -cJf .carry/app.tar.xz distserve-app
# The GPU-only JUnit tests (they skip where there is no GPU, so CI never runs them): gpu-engine's test classes, the
# JUnit console launcher and AssertJ, for scripts/device/gpu_tests.sh.
rm -rf /tmp/distserve-gpu-tests && mkdir -p /tmp/distserve-gpu-tests/classes
cp -r gpu-engine/target/test-classes/. /tmp/distserve-gpu-tests/classes/
m2=${MAVEN_REPO:-$HOME/.m2/repository}
[ -f "$m2/org/junit/platform/junit-platform-console-standalone/1.11.4/junit-platform-console-standalone-1.11.4.jar" ] \
  || mvn -B -q dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4
cp "$m2/org/junit/platform/junit-platform-console-standalone/1.11.4/junit-platform-console-standalone-1.11.4.jar" \
  "$m2/org/assertj/assertj-core/3.27.3/assertj-core-3.27.3.jar" /tmp/distserve-gpu-tests/
tar -C /tmp -cJf .carry/gpu-tests.tar.xz distserve-gpu-tests
if [ ! -f .carry/jre.tar.xz ]; then
  rm -rf /tmp/distserve-jre
  jlink --add-modules java.base,java.logging,java.management,java.naming,java.net.http,java.xml,java.sql,jdk.unsupported,jdk.management,jdk.incubator.vector,java.desktop,jdk.crypto.ec,java.instrument,java.scripting,jdk.zipfs \
    --strip-debug --no-header-files --no-man-pages --compress=2 --output /tmp/distserve-jre
  tar -C /tmp -cJf .carry/jre.tar.xz distserve-jre
fi
if [ -d ../shared/models/qwen3-tokenizer ]; then
  tar -C ../shared/models -cJf .carry/tokenizer.tar.xz qwen3-tokenizer
fi
rm -f .carry/distserve.jar
du -ch .carry/* | sort -h
