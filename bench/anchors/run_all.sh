#!/usr/bin/env bash
# Runs every anchor measurement once, sequentially, one JSON line each (stdout).
# Usage: bash bench/anchors/run_all.sh [--iters N]   (after bench/anchors/setup.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OB=/usr/lib/x86_64-linux-gnu/libopenblas.so.0
PY=(env PYTHONPATH=.deps/anchors python3 bench/anchors/llama_block.py)
PYOB=(env LD_PRELOAD=$OB OPENBLAS_NUM_THREADS=2 PYTHONPATH=.deps/anchors python3 bench/anchors/llama_block.py)
"${PY[@]}"   --framework torch "$@"
"${PYOB[@]}" --framework mlx "$@"
"${PYOB[@]}" --framework mlx --compile "$@"
# Reference BLAS is ~20-50x slower on matmuls: fewer iterations keep this short.
"${PY[@]}"   --framework mlx --iters 3 --warmup 1
for n in 1024 2048; do
  "${PY[@]}"   --framework torch --op matmul --n $n "$@"
  "${PYOB[@]}" --framework mlx   --op matmul --n $n "$@"
  "${PY[@]}"   --framework mlx   --op matmul --n $n --iters 3 --warmup 1
done
