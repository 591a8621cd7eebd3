"""Ray Tune trials: a function over a list of payloads, on a local instance or a cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._errors import BayesdropError

__all__ = ["run_ray_trials"]


def run_ray_trials(
    trial: Callable[[dict[str, Any]], dict[str, Any]],
    payloads: Sequence[dict[str, Any]],
    *,
    address: str | None = None,
    cpus: float = 1.0,
    gpus: float = 0.0,
    storage: str | Path = "_ray",
    name: str = "trials",
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run ``trial(payload)`` for every payload as a Ray Tune trial (``cpus`` / ``gpus`` each).

    Starts a local Ray instance with this machine's CPUs unless Ray is running or ``address``
    names a cluster (``"auto"``, ``"ray://head:10001"``); shuts down what it started. ``trial``
    must be importable by the workers (a module-level function) and return a JSON-like dict.

    Returns:
        The returned dicts of the trials that finished, and the first line of each error.
    """
    try:
        import ray
        from ray import tune
    except ImportError:
        raise BayesdropError("Ray trials need `ray[tune]`: pip install 'bayesdrop[experiments]'.") from None
    # Tune's default TensorBoard/CSV/JSON loggers would choke on nested records: ours go to
    # MLflow and to the run folders
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
        started = True

    def call(config: dict[str, Any]) -> dict[str, Any]:
        return {"records": [trial(config["payload"])]}  # a list: Tune keeps it as it is

    try:
        tuner = tune.Tuner(
            tune.with_resources(call, {"cpu": cpus, "gpu": gpus}),
            param_space={"payload": tune.grid_search(list(payloads))},
            run_config=tune.RunConfig(
                storage_path=str(Path(storage).resolve()), name=f"{name}-{int(time.time())}", verbose=0
            ),
        )
        records, errors = [], []
        for res in tuner.fit():
            if res.error is not None:
                errors.append(str(res.error).splitlines()[0][:300])
            elif res.metrics and "records" in res.metrics:
                records.extend(res.metrics["records"])
    finally:
        if started:
            ray.shutdown()
    return records, errors
