#!/usr/bin/env bash
# The main job: train and evaluate an MC-dropout LeNet on Fashion-MNIST (scikit-learn digits when
# Fashion-MNIST is absent), print the metrics table, write the charts, log the run to MLflow.
# Extra arguments go to `bayesdrop quickstart` (see `bayesdrop quickstart --help`).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
# On the project's machines the MNIST test set sits in ../shared/data: use it as the OOD set.
if [ -z "${BAYESDROP_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
  export BAYESDROP_DATA="$(cd ../shared/data && pwd)"
fi
exec bayesdrop quickstart "$@"
