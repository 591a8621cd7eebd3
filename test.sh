#!/usr/bin/env bash
# The test suite (creates or reuses .venv first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
exec python -m pytest -n 2 -q "$@"
