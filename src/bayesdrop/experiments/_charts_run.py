"""The charts of one run, named by the experiment's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from .._errors import expected
from ._config import ExperimentConfig
from .charts import path_uncertainty, plot_uncertainty_path

__all__ = ["draw_run_charts", "class_names"]


def class_names(dataset: str) -> list[str] | None:
    """Readable class names of a data set, or None (class indices)."""
    if dataset == "fashion-mnist":
        from ..data import FASHION_MNIST_CLASSES

        return list(FASHION_MNIST_CLASSES)
    return None


def _morph_target(cfg: ExperimentConfig, y_test: Tensor) -> int:
    if cfg.chart_morph_to is not None:
        return cfg.chart_morph_to
    others = (y_test != y_test[cfg.chart_image]).nonzero().flatten()
    return int(others[0]) if len(others) else (cfg.chart_image + 1) % len(y_test)


def draw_run_charts(
    mc: Any, cfg: ExperimentConfig, evaluation: Any, x_test: Tensor, y_test: Tensor, out: str | Path
) -> list[Path]:
    """Rotation and morph uncertainty charts (+ the metrics plots) of a trained model.

    Args:
        mc: the wrapped, trained model (a regression model gets the regression plots instead).
        cfg: the experiment (chart image indices, steps, samples, seed).
        evaluation: the run's :class:`bayesdrop.training.Evaluation`.
        x_test: ``(N, C, H, W)`` test images; ``y_test`` ``(N,)`` labels.
        out: folder to write the PNGs in.

    Returns:
        The paths written.
    """
    from ..data import morph, rotation_series

    if evaluation.prediction.task == "regression":
        return _regression_plots(cfg, evaluation, x_test, Path(out))
    n = len(x_test)
    for key in ("chart_image", "chart_morph_to"):
        v = getattr(cfg, key)
        if v is not None and v >= n:
            raise expected(key, f"a test-set index below {n}", v)
    out = Path(out)
    names = class_names(cfg.dataset)
    label = lambda i: names[int(y_test[i])] if names else str(int(y_test[i]))  # noqa: E731
    device = next(iter(mc.parameters())).device
    slug = cfg.slug()
    i = cfg.chart_image
    paths = []

    images, angles = rotation_series(x_test[i], steps=cfg.chart_steps, total_angle=180.0)
    res = path_uncertainty(mc, images.to(device), samples=cfg.samples, seed=cfg.seed)
    paths.append(
        plot_uncertainty_path(
            images,
            res,
            out / f"rotation_{slug}_img{i}.png",
            steps=angles.tolist(),
            step_label="rotation angle (degrees)",
            class_names=names,
            title=f"Test image {i} ({label(i)}) rotated 0-180 degrees: {cfg.method} "
            f"p={cfg.rate:g}, T={cfg.samples}, {cfg.model} on {cfg.dataset}",
        )
    )

    j = _morph_target(cfg, y_test)
    images, alphas = morph(x_test[i], x_test[j], steps=cfg.chart_steps)
    res = path_uncertainty(mc, images.to(device), samples=cfg.samples, seed=cfg.seed)
    paths.append(
        plot_uncertainty_path(
            images,
            res,
            out / f"morph_{slug}_img{i}-to-{j}.png",
            steps=[round(a, 2) for a in alphas.tolist()],
            step_label="morph weight a",
            class_names=names,
            title=f"Test image {i} ({label(i)}) morphed into {j} ({label(j)}): {cfg.method} "
            f"p={cfg.rate:g}, T={cfg.samples}, {cfg.model} on {cfg.dataset}",
        )
    )
    paths.extend(_metric_plots(cfg, evaluation, out))
    return paths


def _regression_plots(cfg: ExperimentConfig, evaluation: Any, x_test: Tensor, out: Path) -> list[Path]:
    """Interval calibration and error vs uncertainty; the mean and bands over x for 1-D inputs."""
    from .. import plots

    slug = cfg.slug()
    data = cfg.dataset if cfg.split is None else f"{cfg.dataset} split {cfg.split}"
    what = f"{cfg.method} p={cfg.rate:g}, T={cfg.samples}, {cfg.model} on {data}"
    pred, targets = evaluation.prediction, evaluation.targets
    path = out / f"regression-calibration_{slug}.png"
    plots.regression_calibration(pred, targets, title=f"Calibration on the test split\n{what}", path=path)
    written = [path]
    if x_test[0].numel() == 1:
        path = out / f"regression-bands_{slug}.png"
        plots.regression_bands(x_test.reshape(-1), pred, targets=targets, title=what, path=path)
        written.append(path)
    return written


def _metric_plots(cfg: ExperimentConfig, evaluation: Any, out: Path) -> list[Path]:
    """The plots of ``bayesdrop.plots``: reliability diagram, risk-coverage, OOD histogram."""
    from .. import plots

    slug = cfg.slug()
    what = f"{cfg.method} p={cfg.rate:g}, T={cfg.samples}, {cfg.model} on {cfg.dataset}"
    pred, targets = evaluation.prediction, evaluation.targets
    written = []
    path = out / f"reliability_{slug}.png"
    plots.reliability_diagram(pred, targets, title=f"Reliability\n{what}", path=path)
    written.append(path)
    path = out / f"risk-coverage_{slug}.png"
    plots.risk_coverage(pred, targets, title=f"Risk-coverage\n{what}", path=path)
    written.append(path)
    if evaluation.ood_prediction is not None:
        ood_name = {"fashion-mnist": "MNIST", "mnist": "Fashion-MNIST"}.get(cfg.dataset, "OOD")
        path = out / f"ood-histogram_{slug}.png"
        plots.ood_histogram(
            pred,
            evaluation.ood_prediction,
            "mutual_information",
            title=f"In- vs out-of-distribution ({ood_name})\n{what}",
            path=path,
        )
        written.append(path)
    return written
