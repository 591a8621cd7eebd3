"""Experiment configs: a validated dataclass, YAML/flag parsing, grids and run keys."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .._errors import BayesdropError, expected

__all__ = [
    "METHODS",
    "ExperimentConfig",
    "load_config",
    "parse_value",
    "expand_grid",
    "sweep_axes",
]

METHODS = ("dropout", "dropconnect", "gaussian", "concrete")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine", "step")
# keys that never change what is computed: left out of the run key, and not sweepable
_BOOKKEEPING = (
    "output_dir",
    "tracking",
    "tracking_uri",
    "experiment_name",
    "progress",
    "device",
    "data_dir",
    "charts",
    "name",
)
# model constructor arguments the experiment sets itself
_SET_BY_EXPERIMENT = ("in_channels", "input_size", "num_classes", "in_features", "out_features", "dropout")
# data sets whose targets are real numbers, and the one model that fits them
_REGRESSION_MODEL = "regression_mlp"


def is_regression_dataset(name: str) -> bool:
    """Whether data set ``name`` is a regression set (the UCI sets and CO2)."""
    from ..data.uci import UCI_DATASETS

    return name in UCI_DATASETS or name == "co2"


# keys that only change the evaluation: runs differing only here share one trained model
_EVAL_ONLY = ("samples", "test_size", "ood_dataset", "chart_image", "chart_morph_to", "chart_steps")


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: data set x model x method x rate x samples, training and bookkeeping.

    Build it from keyword arguments, a YAML mapping (:func:`load_config`) or CLI flags; every
    value is checked at construction and a bad one raises :class:`bayesdrop.BayesdropError`
    naming the key and the allowed values.

    Attributes:
        dataset: a name of ``bayesdrop.data.list_datasets()`` (``"fashion-mnist"``, ``"digits"``,
            or a UCI regression set such as ``"yacht"``).
        split: the published train/test split of a UCI set (None: split 0); null otherwise.
        model: a name of ``bayesdrop.models.list_models()`` (``"lenet5"``, ``"mlp"``, ...).
        model_options: extra constructor arguments of the model, e.g. ``{"hidden": [64]}``
            for the MLP or ``{"placement": "all"}`` (not the shape, classes or dropout rate).
        method: ``"dropout"`` (MC dropout), ``"dropconnect"``, ``"gaussian"`` or ``"concrete"``.
        rate: dropout rate p in [0, 1) (the initial rate for Concrete dropout).
        samples: MC samples T at evaluation.
        epochs, batch_size, optimizer, lr, momentum, schedule, weight_decay, patience: training.
        length_scale, tau: prior length-scale and precision; when ``length_scale`` is set the
            weight decay is ``l^2 (1 - p) / (2 N tau)`` (Gal & Ghahramani) instead. For a
            regression model without a variance head ``tau`` is also the model precision (in
            the targets' units) that the test log-likelihood needs; left null, it is estimated
            after training on the validation split (``MCModel.fit_tau``), which then must exist.
        val_fraction: share of the training data held out for validation / early stopping.
        val_samples: MC samples of the per-epoch validation.
        train_size, test_size: use only the first n examples (None: all).
        ood_dataset: out-of-distribution test set (``"auto"``: MNIST for Fashion-MNIST and
            vice versa, none otherwise; ``None``: none).
        seed: seed of data split, initialisation, training noise and MC sampling.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        data_dir: where to look for data first (None: the data module's search path).
        output_dir: folder of run folders, charts and the sweep's records.
        charts: draw the charts. ``chart_image`` / ``chart_morph_to`` are test-set indices of
            the image to rotate and the image to morph into (None: the first test image of
            another class); ``chart_steps`` the number of steps.
        tracking, tracking_uri, experiment_name: MLflow tracking (default: on, local SQLite
            ``sqlite:///mlflow.db``, artifacts under ``./mlruns``).
        progress: show progress bars.
        name: a run name (default: built from the parameters).
    """

    dataset: str = "fashion-mnist"
    split: int | None = None
    model: str = "lenet5"
    model_options: dict[str, Any] | None = None
    method: str = "dropout"
    rate: float = 0.5
    samples: int = 100
    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    schedule: str = "none"
    weight_decay: float = 0.0
    length_scale: float | None = None
    tau: float | None = None
    val_fraction: float = 0.1
    patience: int | None = None
    val_samples: int = 10
    train_size: int | None = None
    test_size: int | None = None
    ood_dataset: str | None = "auto"
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    output_dir: str = "runs"
    charts: bool = True
    chart_image: int = 0
    chart_morph_to: int | None = None
    chart_steps: int = 13
    tracking: bool = True
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "bayesdrop"
    progress: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    # ----------------------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (YAML/JSON friendly)."""
        return asdict(self)

    def key(self) -> str:
        """12-hex run key: a hash of every field that changes results (not bookkeeping).

        Fields set to None are left out, so a future optional field (default None) keeps the
        keys, and with them the finished runs of existing sweeps.
        """
        ident = {k: v for k, v in self.to_dict().items() if k not in _BOOKKEEPING and v is not None}
        return _hash(ident)

    def train_key(self) -> str:
        """12-hex key of the training alone: runs differing only in evaluation share it."""
        ident = {
            k: v for k, v in self.to_dict().items() if k not in _BOOKKEEPING and k not in _EVAL_ONLY and v is not None
        }
        return _hash(ident)

    def slug(self) -> str:
        """File-name-safe summary of the chosen hyperparameters, used to name runs and charts.

        >>> ExperimentConfig(dataset="digits", model="mlp", rate=0.25, samples=20).slug()
        'digits_mlp_dropout_p0.25_T20_s0'
        """
        if self.name:
            return _safe(self.name)
        data = self.dataset if self.split is None else f"{self.dataset}{self.split}"
        return _safe(f"{data}_{self.model}_{self.method}_p{_num(self.rate)}_T{self.samples}_s{self.seed}")

    def params(self) -> dict[str, Any]:
        """The parameters to log to a tracker (bookkeeping left out, None as 'None')."""
        return {
            k: ("None" if v is None else v)
            for k, v in self.to_dict().items()
            if k not in ("tracking", "tracking_uri", "progress", "name")
        }

    def with_(self, **changes: Any) -> ExperimentConfig:
        """A copy with some fields changed (validated again)."""
        _check_keys(changes)
        return replace(self, **changes)


def _num(x: float) -> str:
    return f"{x:g}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)


def _hash(obj: Mapping[str, Any]) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def field_names() -> tuple[str, ...]:
    """Names of all config keys, in declaration order."""
    return tuple(f.name for f in fields(ExperimentConfig))


def _check_keys(mapping: Mapping[str, Any]) -> None:
    names = field_names()
    for key in mapping:
        if key not in names:
            raise BayesdropError(f"Unknown config key `{key}`; expected one of: {', '.join(names)}.")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _choices(name: str, fn: str) -> tuple[str, ...] | None:
    """Names offered by the data / models module, or None when it cannot be imported."""
    import importlib

    try:
        mod = importlib.import_module(f"bayesdrop.{name}")
        return tuple(getattr(mod, fn)())
    except (ImportError, AttributeError):
        return None


def _validate(c: ExperimentConfig) -> None:  # noqa: C901 - one flat list of checks
    def enum(key: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        if getattr(c, key) not in allowed:
            raise expected(key, f"one of {allowed}", getattr(c, key))

    def pos_int(key: str, optional: bool = False, zero: bool = False) -> None:
        v = getattr(c, key)
        if optional and v is None:
            return
        if not _is_int(v) or v < (0 if zero else 1):
            what = "a non-negative integer" if zero else "a positive integer"
            raise expected(key, what + (" or null" if optional else ""), v)

    def pos_num(key: str, optional: bool = False, zero: bool = False) -> None:
        v = getattr(c, key)
        if optional and v is None:
            return
        if not _is_num(v) or v < 0 or (v == 0 and not zero):
            what = "a non-negative number" if zero else "a positive number"
            raise expected(key, what + (" or null" if optional else ""), v)

    def boolean(key: str) -> None:
        if not isinstance(getattr(c, key), bool):
            raise expected(key, "true or false", getattr(c, key))

    def text(key: str, optional: bool = False) -> None:
        v = getattr(c, key)
        if not (isinstance(v, str) and v) and not (optional and v is None):
            raise expected(key, "a non-empty string" + (" or null" if optional else ""), v)

    text("dataset")
    datasets = _choices("data", "list_datasets")
    if datasets is not None:
        enum("dataset", datasets)
    pos_int("split", optional=True, zero=True)
    regression = is_regression_dataset(c.dataset)
    if c.split is not None and not (regression and c.dataset != "co2"):
        raise expected("split", f"null for {c.dataset!r} (only the UCI sets have published splits)", c.split)
    text("model")
    models = _choices("models", "list_models")
    if models is not None:
        enum("model", models)
    model_key = c.model.replace("-", "_").lower()
    if regression and model_key != _REGRESSION_MODEL:
        raise expected("model", f"{_REGRESSION_MODEL!r} for the regression data set {c.dataset!r}", c.model)
    if not regression and model_key == _REGRESSION_MODEL:
        raise expected("model", f"a classifier for the classification data set {c.dataset!r}", c.model)
    if c.model_options is not None:
        if not isinstance(c.model_options, dict) or not all(isinstance(k, str) for k in c.model_options):
            raise expected(
                "model_options", "a mapping of constructor argument names to values or null", c.model_options
            )
        taken = sorted(set(c.model_options) & set(_SET_BY_EXPERIMENT))
        if taken:
            raise expected(
                "model_options",
                f"a mapping without {_SET_BY_EXPERIMENT} (set by the data set, `rate` and `method`)",
                c.model_options,
            )
    enum("method", METHODS)
    if not _is_num(c.rate) or not 0 <= c.rate < 1:
        raise expected("rate", "a number in [0, 1)", c.rate)
    if c.method == "concrete" and c.rate == 0:
        raise expected("rate", "a number in (0, 1) for method 'concrete' (its initial rate)", c.rate)
    pos_int("samples")
    pos_int("epochs")
    pos_int("batch_size")
    enum("optimizer", OPTIMIZERS)
    pos_num("lr")
    if not _is_num(c.momentum) or not 0 <= c.momentum < 1:
        raise expected("momentum", "a number in [0, 1)", c.momentum)
    enum("schedule", SCHEDULES)
    pos_num("weight_decay", zero=True)
    pos_num("length_scale", optional=True)
    pos_num("tau", optional=True)
    if regression and c.tau is None and c.val_fraction == 0 and not (c.model_options or {}).get("heteroscedastic"):
        raise expected(
            "tau",
            f"the model precision (a positive number, in the targets' units) for the regression data set "
            f"{c.dataset!r}: the test log-likelihood of a model without a variance head needs it (e.g. a "
            "value of the set's tau_values.txt); or val_fraction > 0 to estimate it on the validation "
            "split, or model_options {heteroscedastic: true}",
            None,
        )
    if not _is_num(c.val_fraction) or not 0 <= c.val_fraction < 1:
        raise expected("val_fraction", "a number in [0, 1)", c.val_fraction)
    pos_int("patience", optional=True)
    if c.patience is not None and c.val_fraction == 0:
        raise expected("patience", "null when val_fraction is 0 (early stopping needs a validation split)", c.patience)
    pos_int("val_samples")
    pos_int("train_size", optional=True)
    pos_int("test_size", optional=True)
    text("ood_dataset", optional=True)
    if c.ood_dataset not in (None, "auto") and datasets is not None:
        enum("ood_dataset", (*datasets, "auto"))
    pos_int("seed", zero=True)
    text("device")
    if not (c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:")):
        raise expected("device", "one of ('auto', 'cpu', 'cuda', 'cuda:<i>')", c.device)
    text("data_dir", optional=True)
    text("output_dir")
    boolean("charts")
    pos_int("chart_image", zero=True)
    pos_int("chart_morph_to", optional=True, zero=True)
    pos_int("chart_steps")
    if c.chart_steps < 2:
        raise expected("chart_steps", "an integer >= 2", c.chart_steps)
    boolean("tracking")
    text("tracking_uri")
    text("experiment_name")
    boolean("progress")
    text("name", optional=True)


# --------------------------------------------------------------------------------- parsing
def parse_value(text: str) -> Any:
    """Parse one CLI value the way YAML would: ``"0.5"`` -> 0.5, ``"null"`` -> None,
    ``"a,b"`` or ``"[a, b]"`` -> ``["a", "b"]`` (a list: a sweep axis), ``"{hidden: [64]}"`` ->
    a mapping."""
    import yaml

    if text.strip().startswith(("[", "{")):  # YAML flow syntax: [a, b] or {hidden: [64]}
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            raise expected("value", "valid YAML flow syntax", text) from None
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part != ""]
    value = yaml.safe_load(text)
    return text if isinstance(value, (dict, list)) else value


def _coerce(key: str, value: Any) -> Any:
    # YAML reads 1e-3 as a string ("1e-3") and 1 as an int where a float is meant
    if isinstance(value, str):
        try:
            as_float = float(value)
        except ValueError:
            return value
        if key in {f.name for f in fields(ExperimentConfig) if "float" in str(f.type)}:
            return as_float
    return value


def load_config(source: str | Path | Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Read a YAML file (or a mapping) plus overrides into a raw, key-checked mapping.

    Values may be lists (sweep axes); use :func:`expand_grid` to get the configs, or
    ``ExperimentConfig(**mapping)`` for a single run.

    Raises:
        BayesdropError: for a missing/unreadable file, a non-mapping document, unknown keys.
    """
    raw: dict[str, Any] = {}
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise expected("config", "a path to an existing YAML file", str(path))
        import yaml

        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise BayesdropError(f"Could not parse YAML config {str(path)!r}: {err}") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise expected("config", "a YAML mapping of key: value", type(doc).__name__)
        raw.update(doc)
    elif isinstance(source, Mapping):
        raw.update(source)
    elif source is not None:
        raise expected("config", "a YAML path or a mapping", source)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    _check_keys(raw)
    return {k: _coerce(k, v) for k, v in raw.items()}


def sweep_axes(raw: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The list-valued keys of a raw config (the sweep's axes), in key order."""
    axes = {}
    for key, value in raw.items():
        if isinstance(value, (list, tuple)):
            if key in _BOOKKEEPING:
                raise expected(key, "a single value (it cannot be swept)", list(value))
            if len(value) == 0:
                raise expected(key, "a non-empty list of values", list(value))
            axes[key] = [_coerce(key, v) for v in value]
    return axes


def settings_grid(
    config_class: type,
    raw: Mapping[str, Any],
    *,
    value_lists: frozenset[str] = frozenset(),
    major: str | None = None,
) -> list[Any]:
    """``config_class`` instances for every combination of the list-valued settings of ``raw``
    (``itertools.product`` over them in key order; ``major`` first, so it varies slowest).
    Settings named in ``value_lists`` take a list as one value. Unknown keys are refused."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BayesdropError(
            f"Unknown setting(s) {unknown} for {config_class.__name__}; the settings are {sorted(known)}."
        )
    axes = {k: v for k, v in raw.items() if isinstance(v, (list, tuple)) and k not in value_lists}
    if major in axes:
        axes = {major: axes.pop(major), **axes}
    fixed = {k: v for k, v in raw.items() if k not in axes}
    combinations = itertools.product(*axes.values())
    return [config_class(**fixed, **dict(zip(axes, values, strict=True))) for values in combinations]


def expand_grid(raw: Mapping[str, Any] | str | Path) -> list[ExperimentConfig]:
    """All combinations of a sweep config's list-valued keys (a single run if none).

    The order is that of ``itertools.product`` over the axes in key order; duplicated
    combinations (same run key) are kept once.

    >>> cfgs = expand_grid({"dataset": "digits", "model": "mlp",
    ...                     "method": ["dropout", "dropconnect"], "rate": [0.1, 0.5]})
    >>> [(c.method, c.rate) for c in cfgs]
    [('dropout', 0.1), ('dropout', 0.5), ('dropconnect', 0.1), ('dropconnect', 0.5)]
    """
    raw = load_config(raw) if isinstance(raw, (str, Path)) else load_config(raw)
    axes = sweep_axes(raw)
    out, seen = [], set()
    for cfg in settings_grid(ExperimentConfig, {**raw, **axes}, value_lists=frozenset(set(raw) - set(axes))):
        if cfg.key() not in seen:
            seen.add(cfg.key())
            out.append(cfg)
    return out
