#!/usr/bin/env bash
# Installs the Python *reference* packages used only as benchmark anchors (never by the
# product) into the git-ignored folder .deps/anchors (pip --target, no venv):
#   - mlx==0.32.4 + mlx-cpu==0.32.4   (MLX's own Python API on the same MLX release)
#   - torch==2.15.0 (PyPI, CPU use only) + its pure-Python deps, numpy
# Idempotent: a stamp file records what was installed; a second run only re-checks imports.
#
# torch route (see README.md): PyPI publishes Linux x86_64 torch only as the CUDA build,
# whose default install pulls ~3.0 GB of wheels (nvidia-*, cuda-toolkit, triton). We install
# torch with --no-deps, plus the two small CUDA runtime libraries that libtorch_cpu.so
# itself links (libcudart ~2 MB, libcupti ~12 MB wheels), and generate tiny loader-only
# stubs (make_cuda_stubs.py) for the GPU libraries that are linked but never called on
# CPU tensors (cuBLAS, cuDNN, NCCL, ...). Every stub function aborts if called.
# Download: ~563 MB for torch (591 MB with mlx and numpy) instead of ~3.0 GB.
#
# A local wheelhouse configured in pip (find-links) is deliberately ignored: only PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.deps/anchors"
PY="${PYTHON:-python3}"

MLX_PKGS=(mlx==0.32.4 mlx-cpu==0.32.4)
TORCH_PKGS=(torch==2.15.0)
PURE_PKGS=(numpy==2.4.6 filelock==4.2.11 typing-extensions==4.16.0 sympy==1.14.0
           mpmath==1.3.0 networkx==3.6.1 jinja2==3.1.6 markupsafe==3.0.4 fsspec==2026.9.0)
CUDA_RT_PKGS=(nvidia-cuda-runtime==13.2.86 nvidia-cuda-cupti==13.2.86)

ROUTE="stubs"
SPEC="route=$ROUTE ${MLX_PKGS[*]} ${TORCH_PKGS[*]} ${PURE_PKGS[*]} ${CUDA_RT_PKGS[*]}"
STAMP="$DEST/.anchors-stamp"

check() {
  (cd "$ROOT" && PYTHONPATH="$DEST" "$PY" - <<'EOF'
import mlx.core as mx, torch, numpy
a = mx.ones((4, 4)); mx.eval(a @ a)
t = torch.ones(4, 4, requires_grad=True); (t @ t).sum().backward()
assert float(t.grad.sum()) == 128.0
print(f"anchors ok: mlx {mx.__version__}, torch {torch.__version__} "
      f"(cuda available: {torch.cuda.is_available()}), numpy {numpy.__version__}")
EOF
  )
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SPEC" ]] && check >/dev/null 2>&1; then
  echo "anchors: already installed in $DEST" >&2
else
  echo "anchors: installing into $DEST ($ROUTE route)" >&2
  rm -rf "$DEST"
  mkdir -p "$DEST"
  # One pip call: with --target, separate calls would replace each other's shared
  # top-level folders (nvidia/).
  PIP_FIND_LINKS= "$PY" -m pip install --quiet --disable-pip-version-check \
    --no-deps --target "$DEST" \
    "${MLX_PKGS[@]}" "${TORCH_PKGS[@]}" "${PURE_PKGS[@]}" "${CUDA_RT_PKGS[@]}"
  "$PY" "$ROOT/bench/anchors/make_cuda_stubs.py" "$DEST" >&2
  check >&2
  echo "$SPEC" > "$STAMP"
fi

OPENBLAS=/usr/lib/x86_64-linux-gnu/libopenblas.so.0
echo "anchors: python command (run from $ROOT):" >&2
echo "PYTHONPATH=.deps/anchors python3"
if [[ -e "$OPENBLAS" ]]; then
  echo "anchors: for MLX with OpenBLAS interposed (the fair MLX anchor):" >&2
  echo "LD_PRELOAD=$OPENBLAS OPENBLAS_NUM_THREADS=2 PYTHONPATH=.deps/anchors python3"
else
  echo "anchors: $OPENBLAS missing (apt-get install libopenblas-dev) - MLX will use reference BLAS" >&2
fi
