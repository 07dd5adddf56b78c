#!/usr/bin/env bash
# On the device machine: the CUDA backend's self-check (every kernel against a Java reference at odd sizes, NaN-
# poisoned outputs; CudaBackend vs CpuBackend logits on tiny random models, paged with shuffled block tables, mixed
# prefill + decode). Here: scripts/device/pack.sh (nvcc must be on PATH so that the fatbin is in the jar); then run
# `bash scripts/device/cuda_check.sh` there with carry [".carry"]. Writes $OUT/cuda_check.txt; exit code is the
# self-check's (0 all pass, 1 some check failed, 2 CUDA unavailable or a crash).
# CUDA_CHECK_SYNC=1 synchronizes after every launch, so that a fault names the kernel that caused it.
source scripts/device/env.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
log="$out/cuda_check.txt"
set +e
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader; nproc
  ls /tmp/distserve-app/cuda/ 2>&1; } | tee "$log"
sync_flag=()
[ "${CUDA_CHECK_SYNC:-0}" = 1 ] && sync_flag=(-Ddistserve.cuda.sync=true)
# the wgmma GEMM must be on the tensor cores' warpgroup path: HGMMA in its SASS (4 per k-step of 64)
fatbin=/tmp/distserve-app/cuda/distserve_kernels.fatbin
if command -v cuobjdump >/dev/null && [ -f "$fatbin" ]; then
  echo "SASS HGMMA count in gemm_wgmma_bf16_bf16: $(cuobjdump --dump-sass -fun gemm_wgmma_bf16_bf16 "$fatbin" | grep -c HGMMA)" | tee -a "$log"
fi
timeout 540 "$JAVA" -Xmx8g "${sync_flag[@]}" -cp /tmp/distserve-app io.distserve.engine.cuda.CudaSelfCheck 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
echo "cuda_check exit code: $rc" | tee -a "$log"
exit "$rc"
