# Sourced on the device machine at the start of every run: unpacks the carried JRE and sets JAVA.
set -euo pipefail
if [ ! -x /tmp/distserve-jre/bin/java ]; then
  tar -C /tmp -xJf .carry/jre.tar.xz
fi
export JAVA=/tmp/distserve-jre/bin/java
export DISTSERVE_JAR=$PWD/.carry/distserve.jar
export PYTHONUNBUFFERED=1
