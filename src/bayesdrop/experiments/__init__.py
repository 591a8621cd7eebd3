"""Experiments: configs, single runs, resumable sweeps (local or Ray), tracking and charts.

Nothing heavy is imported here: PyYAML, MLflow, Ray and matplotlib load when used.

>>> from bayesdrop.experiments import expand_grid
>>> grid = expand_grid({"dataset": "digits", "model": "mlp", "method": ["dropout", "gaussian"],
...                     "rate": [0.1, 0.3], "samples": [10, 50]})
>>> len(grid)
8
"""

from ._config import METHODS, ExperimentConfig, expand_grid, load_config, parse_value, settings_grid, sweep_axes
from ._lock import RunFolderInUse, lock_run_folder
from ._ray import run_ray_trials
from ._run import RunResult, load_result, run_dir, run_experiment
from ._sweep import SweepResult, draw_sweep_charts, run_sweep, sweep_table
from ._tracking import MlflowTracker, NullTracker, Tracker, make_tracker

__all__ = [
    "METHODS",
    "ExperimentConfig",
    "RunResult",
    "SweepResult",
    "draw_sweep_charts",
    "expand_grid",
    "load_config",
    "make_tracker",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "run_ray_trials",
    "RunFolderInUse",
    "settings_grid",
    "load_result",
    "lock_run_folder",
    "parse_value",
    "run_dir",
    "run_experiment",
    "run_sweep",
    "sweep_axes",
    "sweep_table",
]
