"""Experiment tracking: MLflow (lazy import) or nothing."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .._io import atomic_open

__all__ = ["Tracker", "NullTracker", "MlflowTracker", "make_tracker", "resolve_tracking_uri"]


def resolve_tracking_uri(uri: str, base: str | Path | None = None) -> str:
    """Make a relative ``sqlite:///file.db`` URI absolute (Ray workers run in other folders)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(base or os.getcwd()) / uri[len(prefix) :]
        return prefix + str(path.resolve())
    return uri


class Tracker:
    """The interface a run reports to; the base class records nothing."""

    run_id: str | None = None

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        """Open a run with its parameters and tags."""

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log the finite numbers among ``metrics`` (others are skipped)."""

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Attach a file to the run."""

    def log_text(self, text: str, artifact_file: str) -> None:
        """Attach ``text`` to the run as the file ``artifact_file`` (a relative path)."""

    def end(self, status: str = "FINISHED") -> None:
        """Close the run with ``"FINISHED"``, ``"FAILED"`` or ``"KILLED"``."""


class NullTracker(Tracker):
    """Tracking turned off."""


def _finite_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[k.replace("@", "_at_")] = f
    return out


class MlflowTracker(Tracker):
    """Logs to MLflow: by default a SQLite store ``./mlflow.db``, artifacts in ``./mlruns``."""

    def __init__(self, tracking_uri: str = "sqlite:///mlflow.db", experiment_name: str = "bayesdrop") -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = resolve_tracking_uri(tracking_uri)
        self.client = MlflowClient(self.uri)
        self.experiment_id = ensure_experiment(self.uri, experiment_name)
        self._mlflow = mlflow

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        key = tags.get("bayesdrop.run_key")
        if key:  # a run of this key left RUNNING by a killed process: mark it KILLED
            stale = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`bayesdrop.run_key` = '{key}' and attributes.status = 'RUNNING'",
            )
            for old in stale:
                self.client.set_terminated(old.info.run_id, status="KILLED")
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        # log_batch caps at 100 params; our configs are smaller
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:500]) for k, v in params.items()])

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self.run_id is None:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step or 0) for k, v in _finite_numbers(metrics).items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        if self.run_id is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.run_id is not None:
            self.client.log_text(self.run_id, text, artifact_file)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The id of MLflow experiment ``name``, created with artifacts under ``./mlruns`` if new.

    The artifact location is made absolute where the store is, so that runs started from
    other working folders (Ray trials) put their artifacts in the same place.
    """
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///") :]).parent / "mlruns").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def make_tracker(enabled: bool, tracking_uri: str, experiment_name: str) -> Tracker:
    """An :class:`MlflowTracker` when ``enabled``, else a :class:`NullTracker`."""
    if not enabled:
        return NullTracker()
    return MlflowTracker(tracking_uri, experiment_name)


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
    return path
