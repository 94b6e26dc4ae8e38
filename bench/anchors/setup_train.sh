#!/usr/bin/env bash
# Installs PEFT for the training anchor (bench/anchors/train_step.py) into the git-ignored
# .deps/train-anchor (pip --target, --no-deps, PyPI only). Everything else it imports comes from
# the other anchor folders: torch from .deps/anchors (bench/anchors/setup.sh), transformers,
# gguf, accelerate, safetensors from .deps/reference-py (scripts/fixtures/setup_reference_py.sh).
# PEFT's own dependencies are all among those, so --no-deps keeps pip from fetching torch again.
# Idempotent: a stamp records the pinned version; a second run only re-checks the imports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.deps/train-anchor"
PY="${PYTHON:-python3}"
PKGS=(peft==0.21.2)
STAMP="$DEST/.train-anchor-stamp"
PYPATH="$DEST:$ROOT/.deps/reference-py:$ROOT/.deps/anchors"

check() {
  (cd "$ROOT" && PYTHONPATH="$PYPATH" "$PY" -c \
    "import torch, transformers, peft; print('train anchor ok: torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)")
}

for dep in "$ROOT/.deps/anchors/torch" "$ROOT/.deps/reference-py/transformers"; do
  if [[ ! -d "$dep" ]]; then
    echo "train anchor: $dep missing; run bash bench/anchors/setup.sh and bash scripts/fixtures/setup_reference_py.sh first" >&2
    exit 1
  fi
done
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "${PKGS[*]}" ]] && check >/dev/null 2>&1; then
  echo "train anchor: already installed in $DEST" >&2
else
  echo "train anchor: installing ${PKGS[*]} into $DEST" >&2
  rm -rf "$DEST"
  mkdir -p "$DEST"
  PIP_FIND_LINKS= "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --target "$DEST" "${PKGS[@]}"
  check >&2
  echo "${PKGS[*]}" > "$STAMP"
fi
echo "PYTHONPATH=.deps/train-anchor:.deps/reference-py:.deps/anchors python3"
