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
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      "$VENV/bin/python" -m pip install -q torch >&2          # a GPU: the default (CUDA) build
    else
      # No GPU: the CPU build. 2.13.0 is on this project's machines' local disk; elsewhere
      # PyTorch's CPU index keeps the multi-GB CUDA build away.
      "$VENV/bin/python" -m pip install -q "torch==2.13.0" >&2 2>/dev/null \
        || "$VENV/bin/python" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu >&2
    fi
  fi
  "$VENV/bin/python" -m pip install -q -e "$ROOT[experiments,dev]" >&2
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
