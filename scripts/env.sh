#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with bayesdrop, its extras and test tools.
# Sourced by run.sh and test.sh; safe to run again: it only reinstalls when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BAYESDROP_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.bayesdrop-installed"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[setup] installing bayesdrop and its dependencies (first run only)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  # torch with a matching torchvision (timm, in the integrations extra, imports torchvision).
  # Each attempt counts only if both then import: a mixed pair installs but fails at import.
  try_torch() {
    "$VENV/bin/python" -m pip install -q "$@" >&2 2>/dev/null \
      && "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null
  }
  if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      try_torch torch torchvision || true                    # a GPU: the default (CUDA) builds
    else
      # No GPU: the CPU builds from PyTorch's CPU index; where that index cannot be reached (this
      # project's machines reach only PyPI), the pair that lies on their local disk; failing
      # both, torch alone (the integrations extra is then skipped).
      try_torch --timeout 10 --retries 0 torch torchvision --index-url https://download.pytorch.org/whl/cpu \
        || try_torch "torch==2.14.1" "torchvision==0.29.1" \
        || { "$VENV/bin/python" -m pip uninstall -q -y torchvision >&2 2>/dev/null;
             "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "torch==2.13.0" >&2; }
    fi
  fi
  EXTRAS="experiments,dev"
  if "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
    EXTRAS="$EXTRAS,integrations"
  else
    echo "[setup] torchvision is missing: the integrations extra (timm, transformers) is skipped, and so are its tests" >&2
  fi
  "$VENV/bin/python" -m pip install -q -e "$ROOT[$EXTRAS]" >&2
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
