# Sourced on the device machine at the start of every run: unpacks what pack.sh carried.
# Sets JAVA, DS (the distserve command as an array) and TOKENIZER.
set -euo pipefail
[ -x /tmp/distserve-jre/bin/java ] || tar -C /tmp -xJf .carry/jre.tar.xz
[ -d /tmp/distserve-app ] || tar -C /tmp -xJf .carry/app.tar.xz
[ -d /tmp/qwen3-tokenizer ] || { [ -f .carry/tokenizer.tar.xz ] && tar -C /tmp -xJf .carry/tokenizer.tar.xz; }
export JAVA=/tmp/distserve-jre/bin/java
export TOKENIZER=/tmp/qwen3-tokenizer
DS=("$JAVA" -Xmx48g -XX:MaxDirectMemorySize=16g -cp /tmp/distserve-app io.distserve.cli.DistServeCli)
export PYTHONUNBUFFERED=1
