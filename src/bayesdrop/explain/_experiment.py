"""CLUE experiments by name: a data set, an MC-dropout network and a VAE trained once (cached in
the run folder), CLUEs of the most uncertain test points for one or more lambdas, the summary
numbers of the CLUE paper, charts and MLflow tracking."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

import bayesdrop as bd

from .. import training
from .._errors import expected
from .._io import atomic_open
from ._clue import Kind, clue
from ._vae import VAE, elbo_loss, image_vae, tabular_vae

__all__ = [
    "EXPLAIN_DATASETS",
    "ExplainConfig",
    "ExplainData",
    "explain_grid",
    "load_explain_data",
    "run_explain",
    "trained_models",
]

EXPLAIN_DATASETS = {
    "credit": 8,
    "compas": 4,
    "compas-no-recid": 4,
    "lsat": 4,
    "wine": 6,
    "mnist-10k": 16,
}  # name -> default latent size (the CLUE paper's for the tabular sets)

_TRAINING = (
    "dataset", "hidden", "layers", "rate", "epochs", "batch_size", "lr", "weight_decay",
    "latent", "vae_width", "vae_depth", "vae_epochs", "seed",
)  # fmt: skip
_RECORDING = frozenset({"data_dir", "output_dir", "tracking", "tracking_uri", "experiment_name", "charts"})


@dataclass(frozen=True)
class ExplainConfig:
    """One CLUE experiment.

    Args:
        dataset: ``credit``, ``compas``, ``compas-no-recid``, ``lsat``, ``wine`` or
            ``mnist-10k`` (the 10,000 MNIST test images: 8,000 to train on, 2,000 to explain).
        hidden, layers, rate: the MC-dropout MLP (``layers`` x ``hidden``, dropout ``rate``
            after each hidden layer; regression nets have a variance head). MNIST: LeNet-5.
        epochs, batch_size, lr, weight_decay: its training (early stopping on 10% of the
            training rows, patience 5).
        latent, vae_width, vae_depth, vae_epochs: the VAE (latent None: the data set's default).
        uncertainty: the kind CLUE reduces; lam: its distance weight (a list in the CLI makes a
            sweep); steps, clue_lr, samples, eval_samples: the optimisation (see ``clue``).
        fraction: explain this share of the test points, the most uncertain first;
            max_points caps their number.
        seed: seeds training, the VAE and the MC masks.
    """

    dataset: str = "credit"
    hidden: int = 200
    layers: int = 2
    rate: float = 0.1
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    latent: int | None = None
    vae_width: int = 300
    vae_depth: int = 3
    vae_epochs: int = 60
    uncertainty: str = "total"
    lam: float = 1.0
    steps: int = 50
    clue_lr: float = 0.1
    samples: int = 64
    eval_samples: int = 100
    fraction: float = 0.2
    max_points: int | None = None
    seed: int = 0
    data_dir: str | None = None
    output_dir: str = "runs/explain"
    charts: bool = True
    tracking: bool = False
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "bayesdrop-explain"

    def __post_init__(self) -> None:
        for name in ("rate", "lr", "weight_decay", "lam", "clue_lr", "fraction"):  # 1 and 1.0: one run
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        if self.dataset not in EXPLAIN_DATASETS:
            raise expected("dataset", f"one of {sorted(EXPLAIN_DATASETS)}", self.dataset)
        if self.uncertainty not in {k.value for k in Kind}:
            raise expected("uncertainty", f"one of {[k.value for k in Kind]}", self.uncertainty)
        if not 0.0 <= float(self.rate) < 1.0:
            raise expected("rate", "a float in [0, 1)", self.rate)
        if not 0.0 < float(self.fraction) <= 1.0:
            raise expected("fraction", "a float in (0, 1]", self.fraction)
        if not float(self.lam) >= 0:
            raise expected("lam", "a float >= 0", self.lam)
        for name in (
            "hidden",
            "layers",
            "epochs",
            "batch_size",
            "vae_width",
            "vae_epochs",
            "steps",
            "samples",
            "eval_samples",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise expected(name, "an integer >= 1", value)

    @property
    def latent_size(self) -> int:
        return self.latent or EXPLAIN_DATASETS[self.dataset]

    def training_key(self) -> str:
        text = json.dumps({k: getattr(self, k) for k in _TRAINING} | {"latent": self.latent_size}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def models_folder(self) -> Path:
        return Path(self.output_dir) / f"{self.dataset}-models-{self.training_key()}"

    def result_path(self) -> Path:
        protocol = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _RECORDING}
        key = hashlib.sha256(json.dumps(protocol, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return self.models_folder() / f"clue-{self.uncertainty}-lam{self.lam:g}-{key}.json"


@dataclass(frozen=True)
class ExplainData:
    """Training and test rows; ``tabular`` is the :class:`bayesdrop.data.tabular.TabularData`
    (None for images)."""

    task: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    widths: list[int] | None
    tabular: Any = None


def load_explain_data(config: ExplainConfig) -> ExplainData:
    if config.dataset == "mnist-10k":
        from ..data import load_mnist

        x, y = load_mnist("test", config.data_dir)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        train, test = order[:8000], order[8000:]
        return ExplainData("classification", x[train], y[train], x[test], y[test], None)
    from ..data.tabular import load_tabular

    data = load_tabular(config.dataset, config.data_dir)
    return ExplainData(data.task, data.x_train, data.y_train, data.x_test, data.y_test, data.widths, data)


def _network(config: ExplainConfig, data: ExplainData) -> nn.Module:
    from ..models import MLP, LeNet5, RegressionMLP

    if data.widths is None:
        return LeNet5(dropout=config.rate)
    inputs = sum(data.widths)
    hidden = (config.hidden,) * config.layers
    if data.task == "classification":
        classes = int(data.y_train.max()) + 1
        return MLP(num_classes=classes, in_features=inputs, hidden=hidden, dropout=config.rate)
    return RegressionMLP(inputs, hidden, 1, dropout=config.rate, placement="hidden", heteroscedastic=True)


def _wrap(net: nn.Module, data: ExplainData) -> bd.MCModel:
    if data.task == "classification":
        return bd.wrap(net)
    return bd.wrap(net, task="regression", output="mean_var")


def _split(data: ExplainData, seed: int) -> tuple[TensorDataset, TensorDataset]:
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, len(order) // 10)
    val, train = order[:n_val], order[n_val:]
    return (
        TensorDataset(data.x_train[train], data.y_train[train]),
        TensorDataset(data.x_train[val], data.y_train[val]),
    )


def trained_models(config: ExplainConfig, data: ExplainData, verbose: bool = True) -> tuple[bd.MCModel, VAE, dict]:
    """The MC-dropout network and the VAE of ``config``, trained once and cached in the models
    folder (``net.pt``, ``vae.pt`` written atomically; later calls load them)."""
    folder = config.models_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with training.seeded(config.seed):
        net = _network(config, data)
    with training.seeded(config.seed + 1):
        vae = (
            image_vae(config.latent_size)
            if data.widths is None
            else tabular_vae(data.widths, config.latent_size, config.vae_width, config.vae_depth)
        )
    mc = _wrap(net, data)
    info: dict[str, Any] = {}
    train_set, val_set = _split(data, config.seed)
    net_path, vae_path = folder / "net.pt", folder / "vae.pt"
    if net_path.is_file():
        net.load_state_dict(torch.load(net_path, weights_only=True))
    else:
        started = time.process_time()
        training.fit(
            mc, train_set, task=data.task, val_data=val_set, epochs=config.epochs, batch_size=config.batch_size,
            lr=config.lr, weight_decay=config.weight_decay, patience=5, seed=config.seed,
        )  # fmt: skip
        info["net_cpu_seconds"] = time.process_time() - started
        with atomic_open(net_path, "wb") as f:
            torch.save(net.state_dict(), f)
        if verbose:
            print(f"[{config.dataset}] network trained ({info['net_cpu_seconds']:.0f} CPU s)", flush=True)
    if vae_path.is_file():
        vae.load_state_dict(torch.load(vae_path, weights_only=True))
    else:
        started = time.process_time()
        training.fit(
            vae, TensorDataset(train_set.tensors[0]), val_data=TensorDataset(val_set.tensors[0]),
            epochs=config.vae_epochs, batch_size=config.batch_size, lr=1e-3, loss=elbo_loss, patience=8,
            seed=config.seed + 1,
        )  # fmt: skip
        info["vae_cpu_seconds"] = time.process_time() - started
        with atomic_open(vae_path, "wb") as f:
            torch.save(vae.state_dict(), f)
        if verbose:
            print(f"[{config.dataset}] VAE trained ({info['vae_cpu_seconds']:.0f} CPU s)", flush=True)
    net.eval()
    vae.eval()
    return mc, vae, info


def _stats(values: Tensor) -> dict[str, float]:
    v = values.double()
    return {"mean": float(v.mean()), "median": float(v.median())}


def run_explain(config: ExplainConfig, *, verbose: bool = True, data: ExplainData | None = None) -> dict[str, Any]:
    """Train (or load) the models, explain the most uncertain ``fraction`` of the test points
    with CLUE, and return (and write, atomically, to ``config.result_path()``) the summary:
    uncertainty before / after (mean, median), L1 change per input column, class-flip rate,
    VAE log-likelihood of the originals and of the explanations, CPU time. Finished results are
    read back. Charts and MLflow logging follow ``config.charts`` / ``config.tracking``."""
    path = config.result_path()
    if path.is_file():
        return json.loads(path.read_text())
    data = data if data is not None else load_explain_data(config)
    mc, vae, info = trained_models(config, data, verbose)
    started = time.process_time()
    with torch.no_grad():
        pred = mc.predict(data.x_test, samples=config.eval_samples, seed=config.seed)
    from ._clue import uncertainty_of

    u = uncertainty_of(pred, config.uncertainty)
    count = max(1, int(round(config.fraction * len(u))))
    if config.max_points:
        count = min(count, config.max_points)
    chosen = u.topk(count).indices
    x = data.x_test[chosen]
    result = clue(
        mc, vae, x, uncertainty=config.uncertainty, lam=config.lam, steps=config.steps, lr=config.clue_lr,
        samples=config.samples, eval_samples=config.eval_samples, seed=config.seed,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(config.seed)
    log_p_x = vae.log_prob(x, samples=100, generator=generator)
    log_p_clue = vae.log_prob(result.explanation, samples=100, generator=generator)
    d = x[0].numel()
    summary: dict[str, Any] = {
        "config": asdict(config),
        "points": int(count),
        "uncertainty": config.uncertainty,
        "before": {k: _stats(v) for k, v in result.before.items()},
        "after": {k: _stats(v) for k, v in result.after.items()},
        "l1_per_column": _stats(result.change.flatten(1).abs().sum(1) / d),
        "log_p_original": _stats(log_p_x),
        "log_p_clue": _stats(log_p_clue),
        "steps": _stats(result.steps.double()),
        "converged": float(result.converged.double().mean()),
        "clue_cpu_seconds": time.process_time() - started,
        "test_accuracy" if data.task == "classification" else "test_rmse": _test_score(pred, data),
        **info,
    }
    if data.task == "classification":
        summary["class_flip_rate"] = float((result.prediction_before != result.prediction_after).double().mean())
    charts = _charts(config, data, result, chosen) if config.charts else []
    summary["charts"] = [str(c) for c in charts]
    with atomic_open(path) as f:
        json.dump(summary, f, indent=1)
    if config.tracking:
        _track(config, summary, charts, path)
    if verbose:
        kind = config.uncertainty
        print(
            f"[{config.dataset}] lambda {config.lam:g}: {kind} uncertainty "
            f"{summary['before'][kind]['mean']:.3f} -> {summary['after'][kind]['mean']:.3f} "
            f"over {count} points, L1/column {summary['l1_per_column']['mean']:.3f}",
            flush=True,
        )
    return summary


def _test_score(pred, data: ExplainData) -> float:
    from .. import metrics

    if data.task == "classification":
        return metrics.accuracy(pred.mean, data.y_test)
    return metrics.rmse(pred.mean, data.y_test) * (data.tabular.target_std if data.tabular else 1.0)


def _charts(config: ExplainConfig, data: ExplainData, result, chosen: Tensor) -> list[Path]:
    from ..plots import clue_images, feature_changes, uncertainty_histograms

    folder = config.result_path().with_suffix("")
    kind = config.uncertainty
    paths = [folder / "uncertainty.png"]
    uncertainty_histograms(result.before[kind], result.after[kind], label=f"{kind} uncertainty", path=paths[0])
    order = (result.before[kind] - result.after[kind]).argsort(descending=True)[:6]
    if data.widths is None:
        paths.append(folder / "images.png")
        clue_images(
            result.x[order], result.explanation[order], before=result.before[kind][order],
            after=result.after[kind][order], label_before=result.prediction_before[order],
            label_after=result.prediction_after[order], path=paths[-1],
        )  # fmt: skip
    else:
        paths.append(folder / "features.png")
        names = [f.name for f in data.tabular.features]
        feature_changes(_per_feature_change(data, result.x[order], result.explanation[order]), names, path=paths[-1])
    return paths


def _per_feature_change(data: ExplainData, x: Tensor, explanation: Tensor) -> Tensor:
    """``(N, F)``: per feature, the change in standard deviations (continuous) or 1 where the
    category changed."""
    out = []
    for feature, cols in zip(data.tabular.features, data.tabular.column_slices(), strict=True):
        if feature.kind == "categorical":
            out.append((x[:, cols].argmax(1) != explanation[:, cols].argmax(1)).float())
        else:
            out.append(explanation[:, cols.start] - x[:, cols.start])
    return torch.stack(out, 1)


def _track(config: ExplainConfig, summary: dict, charts: list[Path], path: Path) -> None:
    from ..experiments import make_tracker

    tracker = make_tracker(True, config.tracking_uri, config.experiment_name)
    params = {k: v for k, v in asdict(config).items() if k not in _RECORDING}
    tracker.start(f"clue-{config.dataset}-lam{config.lam:g}", params, {"bayesdrop.kind": "explain"})
    flat = {"points": summary["points"], "clue_cpu_seconds": summary["clue_cpu_seconds"]}
    for when in ("before", "after"):
        for kind, values in summary[when].items():
            flat[f"{kind}_{when}_mean"] = values["mean"]
    for key in ("l1_per_column", "log_p_original", "log_p_clue"):
        flat[f"{key}_mean"] = summary[key]["mean"]
    if "class_flip_rate" in summary:
        flat["class_flip_rate"] = summary["class_flip_rate"]
    tracker.log_metrics(flat)
    tracker.log_artifact(path)
    for chart in charts:
        tracker.log_artifact(chart, "charts")
    tracker.end("FINISHED")


def explain_grid(raw: dict[str, Any]) -> list[ExplainConfig]:
    """Configs from a mapping (YAML or CLI); list values (e.g. ``lam: [0.5, 1, 2]``) are axes."""
    from ..experiments import settings_grid

    return settings_grid(ExplainConfig, raw)
