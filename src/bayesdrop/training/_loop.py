"""Training loops (classification and regression) and evaluation through the MC engine."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .._errors import BayesdropError, expected
from ..outputs import Selector, log_probs, mean_variance, select
from ._utils import load_checkpoint, prior_weight_decay, resolve_device, save_checkpoint, seeded

__all__ = ["EpochStats", "History", "Evaluation", "fit", "evaluate_model", "dataset_targets", "network"]

TASKS = ("classification", "regression")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine", "step")
CLASSIFICATION_OUTPUTS = ("logits", "probs", "log_probs")
REGRESSION_OUTPUTS = ("mean", "mean_var", "mean_logvar")


@dataclass
class EpochStats:
    """What one epoch produced (the per-epoch metrics that trackers log).

    Attributes:
        epoch: 1-based epoch number.
        train_loss: mean training objective over the epoch (data loss + regularisers).
        lr: learning rate used during the epoch.
        seconds: wall time of the epoch.
        val_loss: validation loss (classification: MC NLL; regression: MSE of the MC mean), or
            None without a validation split.
        val_accuracy: classification accuracy of the MC mean on the validation split, or None.
    """

    epoch: int
    train_loss: float
    lr: float
    seconds: float
    val_loss: float | None = None
    val_accuracy: float | None = None

    def metrics(self) -> dict[str, float]:
        """The numeric fields except ``epoch``, without the missing ones."""
        return {k: v for k, v in asdict(self).items() if k != "epoch" and v is not None}


@dataclass
class History:
    """The outcome of :func:`fit`.

    Attributes:
        epochs: one :class:`EpochStats` per completed epoch (also those before a resume).
        best_epoch: the epoch whose weights the model holds at the end (the best validation
            loss with a validation split, else the last epoch).
        stopped_early: whether early stopping ended training.
        resumed_from: number of epochs found in the checkpoint at start (0 for a fresh run).
    """

    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    resumed_from: int = 0


@dataclass
class Evaluation:
    """What :func:`evaluate_model` returns.

    Attributes:
        prediction: the :class:`bayesdrop.Prediction` on the test data (B = test size).
        targets: ``(B,)`` class indices or ``(B, *out)`` regression targets.
        metrics: ``bayesdrop.metrics.evaluate`` of the prediction (name -> value).
        ood_prediction: the prediction on the out-of-distribution data, if any was given.
    """

    prediction: Any
    targets: Tensor
    metrics: dict[str, Any]
    ood_prediction: Any = None


def dataset_targets(data: Dataset) -> Tensor:
    """All targets of a dataset of ``(x, y)`` pairs, stacked: ``(N,)`` or ``(N, *out)``."""
    tensors = getattr(data, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return tensors[1]
    ys = [torch.as_tensor(data[i][1]) for i in range(len(data))]  # type: ignore[arg-type]
    return torch.stack(ys)


def _epoch_seed(seed: int, epoch: int) -> int:
    # one independent, reproducible stream per epoch: resuming at any epoch replays it exactly
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63 - 1)


def _loader(data: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int) -> DataLoader:
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=workers)


def _data_loss(out: Any, y: Tensor, task: str, output: str, selector: Selector = None) -> Tensor:
    """Training loss of a model's raw output, read as MC sampling reads it (``bayesdrop.outputs``)."""
    value = select(out, selector, output)
    if task == "classification":
        y = y.long()
        if output == "logits" and isinstance(value, Tensor):
            return F.cross_entropy(value, y)
        return F.nll_loss(log_probs(value, output), y)
    mean, var = mean_variance(value, output)
    target = y.reshape(mean.shape).to(mean.dtype)
    if var is None:
        return F.mse_loss(mean, target)
    return F.gaussian_nll_loss(mean, target, var, full=True)


def network(mc: nn.Module) -> nn.Module:
    """The network whose weights are trained and saved (the wrapped model of an MCModel)."""
    import bayesdrop as bd

    return bd.unwrap(mc) if isinstance(mc, bd.MCModel) else mc


def _concrete_layers(model: nn.Module) -> bool:
    import bayesdrop as bd

    cls = getattr(bd, "ConcreteDropout", None)
    return cls is not None and any(isinstance(m, cls) for m in model.modules())


def _concrete_penalty(model: nn.Module) -> Tensor:
    import bayesdrop as bd

    return bd.concrete_regularization(model)


def _to_device(batch: Any, dev: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(dev)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, dev) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, dev) for k, v in batch.items()}
    return batch


def _batch_size(batch: Any) -> int:
    first = batch
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    return int(first.shape[0]) if isinstance(first, Tensor) and first.ndim else 1


@torch.no_grad()
def _validate_loss(
    model: nn.Module, data: Dataset, loss: Callable[[nn.Module, Any], Tensor], batch_size: int, dev: torch.device
) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in _loader(data, batch_size, shuffle=False, seed=0, workers=0):
        batch = _to_device(batch, dev)
        size = _batch_size(batch)
        total += float(loss(model, batch)) * size
        count += size
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def _validate(
    mc: nn.Module,
    data: Dataset,
    task: str,
    batch_size: int,
    samples: int,
    seed: int,
) -> tuple[float, float | None]:
    loader = _loader(data, batch_size, shuffle=False, seed=0, workers=0)
    pred = mc.predict_loader(loader, samples=samples, seed=seed)  # type: ignore[operator]
    targets = dataset_targets(data).to(pred.mean.device)
    if task == "classification":
        t = targets.long()
        nll = -pred.log_mean.gather(1, t[:, None]).mean().item()
        acc = (pred.mean.argmax(1) == t).float().mean().item()
        return nll, acc
    mse = F.mse_loss(pred.mean, targets.reshape(pred.mean.shape).to(pred.mean.dtype)).item()
    return mse, None


def fit(
    mc: nn.Module,
    train_data: Dataset,
    *,
    task: str = "classification",
    val_data: Dataset | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    optimizer: str = "adam",
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    length_scale: float | None = None,
    tau: float | None = None,
    p: float | None = None,
    schedule: str = "none",
    step_size: int | None = None,
    gamma: float = 0.1,
    patience: int | None = None,
    val_samples: int = 10,
    output: str | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = False,
    num_workers: int = 0,
    callback: Callable[[EpochStats], None] | None = None,
    loss: Callable[[nn.Module, Any], Tensor] | None = None,
) -> History:
    """Train a wrapped model (``mc = bd.wrap(model, ...)``) through the wrapper.

    Every step runs ``mc.train(); loss(mc(x), y)``, so DropConnect, Gaussian and Concrete
    dropout train with their noise on, exactly as they are sampled later. The data loss is the
    cross-entropy (classification) or the MSE / Gaussian NLL of a (mean, variance) head
    (regression); when the model holds ``bd.ConcreteDropout`` layers,
    ``bd.concrete_regularization(model)`` is added to it.

    Training is reproducible: epoch ``e`` seeds the shuffling and torch's generators (the
    dropout noise) from ``(seed, e)``, so an interrupted run resumed from its checkpoint ends
    with the same weights as an uninterrupted one. The caller's global random state is left as
    it was (the seeding is scoped to each epoch and undone after it).

    Args:
        mc: the wrapped model (an ``nn.Module`` with ``predict_loader`` for validation).
        train_data: dataset of ``(x, y)``; ``x`` ``(*in)``, ``y`` a class index or ``(*out)``.
        task: ``"classification"`` or ``"regression"``.
        val_data: validation dataset; enables early stopping and best-weights restoring.
        epochs: maximal number of epochs (>= 1).
        batch_size: training mini-batch size.
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: coupled L2 coefficient of the optimizer; ignored when ``length_scale``
            is given.
        length_scale: prior length-scale ``l``; sets ``weight_decay = 2 * lambda`` with
            ``lambda = l^2 (1 - p) / (2 N tau)`` (Gal & Ghahramani), N = ``len(train_data)``.
        tau: model precision for the prior weight decay (default 1).
        p: dropout probability for the prior weight decay (required with ``length_scale``).
        schedule: ``"none"``, ``"cosine"`` (to 0 over ``epochs``) or ``"step"`` (multiply by
            ``gamma`` every ``step_size`` epochs, default ``max(1, epochs // 3)``).
        step_size: step-schedule period in epochs.
        gamma: step-schedule factor.
        patience: stop after this many epochs without a better validation loss (needs
            ``val_data``); None trains all epochs.
        val_samples: MC samples T of the validation predictions.
        output: what the model returns; default ``mc.output`` or ``"logits"`` / ``"mean"``.
        checkpoint: file written atomically after every epoch; if it exists at start,
            training resumes from it.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        seed: base seed of shuffling and noise.
        progress: show a tqdm progress bar per epoch.
        num_workers: DataLoader workers.
        callback: called with each epoch's :class:`EpochStats` (e.g. a tracker).
        loss: ``loss(model, batch) -> scalar`` replacing the task's data loss, for models that
            are not classifiers or regressors (a VAE's negative ELBO): ``batch`` is what the
            loader yields, moved to the device; ``mc`` may then be any ``nn.Module``. The
            validation loss (``val_data``) is the same loss in eval mode, without MC samples.

    Returns:
        The :class:`History`; the model holds the best (or last) weights.
    """
    if task not in TASKS:
        raise expected("task", f"one of {TASKS}", task)
    if optimizer not in OPTIMIZERS:
        raise expected("optimizer", f"one of {OPTIMIZERS}", optimizer)
    if schedule not in SCHEDULES:
        raise expected("schedule", f"one of {SCHEDULES}", schedule)
    if not isinstance(epochs, int) or epochs < 1:
        raise expected("epochs", "a positive integer", epochs)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise expected("batch_size", "a positive integer", batch_size)
    if not lr > 0:
        raise expected("lr", "a positive float", lr)
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise expected("patience", "a positive integer or None", patience)
    if patience is not None and val_data is None:
        raise BayesdropError("Early stopping (`patience`) needs a validation split `val_data`.")
    output = output or getattr(mc, "output", None)
    allowed = CLASSIFICATION_OUTPUTS if task == "classification" else REGRESSION_OUTPUTS
    output = output or allowed[0]
    if output not in allowed:
        raise expected("output", f"one of {allowed} for task={task!r}", output)
    if length_scale is not None:
        if p is None:
            raise BayesdropError("The prior weight decay (`length_scale`) needs the dropout `p`.")
        weight_decay = 2 * prior_weight_decay(length_scale, p, len(train_data), tau or 1.0)
    if weight_decay < 0:
        raise expected("weight_decay", "a non-negative float", weight_decay)

    dev = resolve_device(device)
    mc.to(dev)
    params = [q for q in mc.parameters() if q.requires_grad]
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if schedule == "cosine":
        sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    elif schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size or max(1, epochs // 3), gamma)
    else:
        sched = None
    concrete = _concrete_layers(mc)

    history = History()
    best_val, best_state, bad_epochs = math.inf, None, 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        state = load_checkpoint(ckpt, map_location=dev)
        network(mc).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler") is not None:
            sched.load_state_dict(state["scheduler"])
        history = History(
            epochs=[EpochStats(**e) for e in state["history"]],
            best_epoch=state["best_epoch"],
            stopped_early=state["stopped_early"],
            resumed_from=len(state["history"]),
        )
        best_val, best_state, bad_epochs = state["best_val"], state["best_state"], state["bad"]
    start = len(history.epochs)

    for epoch in range(start, epochs):
        if history.stopped_early:
            break
        eseed = _epoch_seed(seed, epoch)
        # The epoch's noise comes from torch's global generator (dropout in forward), seeded
        # from (seed, epoch) and restored afterwards: the caller's global state is left alone.
        with seeded(eseed, dev):
            t0 = time.perf_counter()
            loader = _loader(train_data, batch_size, True, eseed, num_workers)
            batches: Any = loader
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = batches = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
            mc.train()
            total, count = 0.0, 0
            lr_now = opt.param_groups[0]["lr"]
            for batch in batches:
                batch = _to_device(batch, dev)
                if loss is None:
                    x, y = batch
                    value = _data_loss(mc(x), y, task, output, getattr(mc, "select", None))
                else:
                    value = loss(mc, batch)
                if concrete:
                    value = value + _concrete_penalty(mc)
                if not torch.isfinite(value):
                    raise BayesdropError(
                        f"The training loss became {value.item()} at epoch {epoch + 1}: lower `lr` or check the data."
                    )
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                size = _batch_size(batch)
                total += value.item() * size
                count += size
                if bar is not None:
                    bar.set_postfix(loss=f"{total / count:.4f}")
            if bar is not None:
                bar.close()
            if sched is not None:
                sched.step()
            stats = EpochStats(epoch=epoch + 1, train_loss=total / max(count, 1), lr=lr_now, seconds=0.0)
            if val_data is not None:
                if loss is None:
                    stats.val_loss, stats.val_accuracy = _validate(
                        mc, val_data, task, max(batch_size, 256), val_samples, eseed
                    )
                else:
                    stats.val_loss = _validate_loss(mc, val_data, loss, max(batch_size, 256), dev)
                if stats.val_loss < best_val:
                    best_val, bad_epochs, history.best_epoch = stats.val_loss, 0, epoch + 1
                    best_state = {k: v.detach().clone() for k, v in network(mc).state_dict().items()}
                else:
                    bad_epochs += 1
                    if patience is not None and bad_epochs >= patience:
                        history.stopped_early = True
            else:
                history.best_epoch = epoch + 1
            mc.train()
        stats.seconds = time.perf_counter() - t0
        history.epochs.append(stats)
        if ckpt is not None:
            save_checkpoint(
                ckpt,
                {
                    "model": network(mc).state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": None if sched is None else sched.state_dict(),
                    "history": [asdict(e) for e in history.epochs],
                    "best_epoch": history.best_epoch,
                    "stopped_early": history.stopped_early,
                    "best_val": best_val,
                    "best_state": best_state,
                    "bad": bad_epochs,
                },
            )
        if callback is not None:
            callback(stats)
    if best_state is not None:
        network(mc).load_state_dict(best_state)
    return history


def evaluate_model(
    mc: nn.Module,
    test_data: Dataset,
    *,
    samples: int = 100,
    seed: int = 0,
    batch_size: int = 500,
    ood_data: Dataset | None = None,
    keep_samples: bool = False,
    progress: bool = False,
) -> Evaluation:
    """MC-predict the test data with the core engine and score it with ``metrics.evaluate``.

    Args:
        mc: the wrapped, trained model.
        test_data: dataset of ``(x, y)`` pairs.
        samples: MC samples T.
        seed: sampling seed (same seed, same numbers).
        batch_size: batch size of the prediction loader.
        ood_data: out-of-distribution dataset (``(x, y)`` or ``x``), for OOD detection metrics.
        keep_samples: keep the raw ``(B, T, C)`` samples in the prediction.
        progress: progress bar of the engine.

    Returns:
        An :class:`Evaluation` with the prediction, targets and metrics.
    """
    from .. import metrics as _metrics

    loader = _loader(test_data, batch_size, shuffle=False, seed=0, workers=0)
    pred = mc.predict_loader(  # type: ignore[operator]
        loader, samples=samples, seed=seed, keep_samples=keep_samples, progress=progress
    )
    targets = dataset_targets(test_data).to(pred.mean.device)
    ood_pred = None
    if ood_data is not None:
        ood_loader = _loader(ood_data, batch_size, shuffle=False, seed=0, workers=0)
        ood_pred = mc.predict_loader(  # type: ignore[operator]
            ood_loader, samples=samples, seed=seed + 1, progress=progress
        )
    first = test_data[0]
    example = (first[0] if isinstance(first, (tuple, list)) else first).unsqueeze(0).to(pred.mean.device)
    # Complexity per input: parameters, FLOPs of one forward and of MC prediction (naive and engine).
    scores = _metrics.evaluate(pred, targets, ood=ood_pred, model=mc, inputs=example)
    return Evaluation(prediction=pred, targets=targets, metrics=dict(scores), ood_prediction=ood_pred)
