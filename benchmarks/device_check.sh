#!/usr/bin/env bash
# The GPU figures of issue 15, in under 5 minutes on one GPU: `tirg train` (tirg, CSS at 64 px,
# global batch 32) s/iteration and images/s with and without --amp, --channels_last and
# --cache_images, and the hours the paper's 160k CSS iterations would take at that speed.
# With 2+ GPUs it also times 2 processes (NCCL) and their weights' distance to 1 process.
# Usage: bash benchmarks/device_check.sh [OUT]   (default OUT: results/bench_gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/bench_gpu}"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT"
"$PYTHON" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    print(f"gpu {i}: {torch.cuda.get_device_name(i)}, bf16 {torch.cuda.is_bf16_supported()}")
PY
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
NPROCS="1"
if [ "$GPUS" -ge 2 ]; then NPROCS="1 2"; fi
# 2,000 training images are generated once (about 20 s); 60 iterations per run, the first 10 left out.
timeout 280 "$PYTHON" benchmarks/bench_distributed.py --device cuda --nprocs $NPROCS \
    --variants plain amp channels_last cache_images all --iters 60 --log_every 10 --workers 4 --out "$OUT"
