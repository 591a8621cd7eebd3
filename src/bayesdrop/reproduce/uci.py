"""The UCI regression table of Gal & Ghahramani (2016), reproduced side by side.

Protocol (``reference/gal2016.md`` and the authors' code, ``yaringal/DropoutUncertaintyExps``):
one hidden layer of ReLU units (50; 100 for protein), dropout on the input and on the hidden
layer, Adam (lr 1e-3), squared error on the standardised target plus the prior weight decay
``lambda * ||W||^2`` on the weight matrices (not the biases) with
``lambda = l^2 (1 - p) / (2 N tau)``, ``l = 1e-2``; predictions with T = 10,000 MC samples,
RMSE of the MC mean and the test log-likelihood of the MC mixture on the original scale.

Two settings:

- ``table1`` (the paper's Table 1 budget): ``10 x n_epochs.txt`` epochs (400; 200 for protein),
  batch 32 (the paper's), and p and tau chosen per split over ``dropout_rates.txt x
  tau_values.txt`` by validation log-likelihood on the last 20% of the training split, then
  retrained on the whole split. (The 2016 code instead hand-set p and the prior scale per data
  set, e.g. p = 0.01 and a 100x stronger weight decay for yacht, and tuned one tau per data set
  by Bayesian optimisation on such validation splits; the grid is the honest, reproducible
  stand-in, and it is what the authors themselves reran at 400 epochs in 2018.)
- ``grid4000`` (the authors' 2018 protocol): ``100 x n_epochs.txt`` epochs (4,000; 2,000 for
  protein), batch 128 (the 2018 code's), rate and tau chosen per split over
  ``dropout_rates.txt x tau_values.txt`` by validation log-likelihood, then retrained.

Speed: every stage trains all its networks (splits x rates x taus) as one :class:`BatchedMLP`
with stacked weights, batched matmuls, hand-written gradients of the two-layer network and one
fused Adam step. Networks of the same split share their data order and their uniform draws
(common random numbers across the grid; each network's own training is distributed exactly as
if it were trained alone). All MC predictions go through the engine (``bd.wrap(...).predict``),
one network at a time (:meth:`BatchedMLP.member`), so each can carry its own tau.

Run: ``python -m bayesdrop.reproduce.uci --dataset all --setting table1 --root
../shared/data/uci --out docs/results``. Results are merged into ``<out>/uci.json`` and the
Markdown table ``<out>/uci.md`` is regenerated from it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import hashlib
import json
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import BayesdropError, expected
from ._common import write_text_atomic

__all__ = [
    "PUBLISHED",
    "SETTINGS",
    "BatchedMLP",
    "Setting",
    "main",
    "render_markdown",
    "run_uci",
    "train_batched",
]

LENGTH_SCALE = 1e-2
"""Prior length-scale l of the protocol."""


@dataclass(frozen=True)
class Setting:
    """One protocol of the UCI table."""

    name: str
    epoch_multiplier: int
    """Epochs = multiplier x ``n_epochs.txt`` (40; 20 for protein)."""
    batch_size: int
    dropout_rates: tuple[float, ...] | None
    """Rates to search; None: the folder's ``dropout_rates.txt``."""
    reference: str
    """Key of :data:`PUBLISHED` to compare with."""
    description: str


SETTINGS: dict[str, Setting] = {
    "table1": Setting(
        "table1",
        10,
        32,
        None,
        "paper_table1",
        "paper Table 1 budget: 400 epochs (200 protein), batch 32; p x tau chosen per split from "
        "dropout_rates.txt x tau_values.txt by validation LL on the last 20% of the training "
        "split, then retrained on the whole split",
    ),
    "grid4000": Setting(
        "grid4000",
        100,
        128,
        None,
        "grid_2018",
        "authors' 2018 grid search: 4,000 epochs (2,000 protein), batch 128, p x tau per split "
        "from "
        "dropout_rates.txt x tau_values.txt by validation LL on the last 20% of the training split",
    ),
}

# (mean, standard error) as printed in reference/gal2016.md; RMSE then LL.
PUBLISHED: dict[str, dict[str, tuple[tuple[float, float], tuple[float, float]]]] = {
    "paper_table1": {
        "boston": ((2.97, 0.19), (-2.46, 0.06)),
        "concrete": ((5.23, 0.12), (-3.04, 0.02)),
        "energy": ((1.66, 0.04), (-1.99, 0.02)),
        "kin8nm": ((0.10, 0.00), (0.95, 0.01)),
        "naval": ((0.01, 0.00), (3.80, 0.01)),
        "power": ((4.02, 0.04), (-2.80, 0.01)),
        "protein": ((4.36, 0.01), (-2.89, 0.00)),
        "wine": ((0.62, 0.01), (-0.93, 0.01)),
        "yacht": ((1.11, 0.09), (-1.55, 0.03)),
    },
    "grid_2018": {
        "boston": ((2.90, 0.18), (-2.40, 0.04)),
        "concrete": ((4.83, 0.16), (-2.94, 0.02)),
        "energy": ((0.54, 0.01), (-1.21, 0.01)),
        "kin8nm": ((0.08, 0.00), (1.14, 0.01)),
        "naval": ((0.0007, 0.0000), (4.45, 0.00)),
        "power": ((4.01, 0.04), (-2.81, 0.01)),
        "protein": ((4.27, 0.02), (-2.87, 0.00)),
        "wine": ((0.62, 0.01), (-0.93, 0.01)),
        "yacht": ((0.67, 0.05), (-1.25, 0.02)),
    },
}
"""Published numbers (``reference/gal2016.md``): Table 1's Dropout column, 2018 grid search."""

_DECIMALS = {("grid_2018", "naval"): (4, 2)}  # printed decimals of (RMSE, LL); default (2, 2)


# --------------------------------------------------------------------------------------------
# The batched model
# --------------------------------------------------------------------------------------------


class _SingleMLP(nn.Module):
    """One member of a :class:`BatchedMLP` as a plain network: ``(N, Q) -> (N, 1)``."""

    def __init__(self, parent: BatchedMLP, g: int) -> None:
        super().__init__()
        q, h = parent.in_features, parent.hidden
        self.p = float(parent.p[g])
        self.register_buffer("x_shift", parent.x_shift[g].detach().clone())
        self.register_buffer("x_scale", parent.x_scale[g].detach().clone())
        self.register_buffer("y_shift", parent.y_shift[g : g + 1].detach().clone())
        self.register_buffer("y_scale", parent.y_scale[g : g + 1].detach().clone())
        dtype, device = parent.w1.dtype, parent.w1.device
        self.drop_in = nn.Dropout(self.p)
        self.hidden = nn.Linear(q, h, dtype=dtype, device=device)
        self.drop_hidden = nn.Dropout(self.p)
        self.out = nn.Linear(h, 1, dtype=dtype, device=device)
        with torch.no_grad():
            self.hidden.weight.copy_(parent.w1[g].T)
            self.hidden.bias.copy_(parent.b1[g, 0])
            self.out.weight.copy_(parent.w2[g].T)
            self.out.bias.copy_(parent.b2[g, 0])

    def forward(self, x: Tensor) -> Tensor:
        """``(N, Q)`` raw inputs -> ``(N, 1)`` predictions on the original target scale."""
        z = (x - self.x_shift) / self.x_scale
        z = self.drop_hidden(F.relu(self.hidden(self.drop_in(z))))
        return self.out(z) * self.y_scale + self.y_shift


class BatchedMLP(nn.Module):
    """G independent one-hidden-layer ReLU networks with dropout, run as one model.

    Network ``g`` has weights ``w1[g] (Q, H)``, ``b1[g] (1, H)``, ``w2[g] (H, 1)``,
    ``b2[g] (1, 1)``, its own dropout rate ``p[g]`` (on the input and on the hidden layer) and
    its own standardisation (``x_shift/x_scale (G, Q)``, ``y_shift/y_scale (G,)``), so that
    :meth:`forward` maps raw inputs to predictions on the original target scale.

    Dropout goes through ``torch.nn.functional.dropout`` with ``training=self.training``, one
    call per run of consecutive networks with the same rate, so the MC engine can sample it.

    Example:
        >>> model = BatchedMLP(n_networks=3, in_features=4, hidden=8, p=[0.1, 0.1, 0.05])
        >>> model.eval()(torch.zeros(5, 3, 4)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        n_networks: int,
        in_features: int,
        hidden: int,
        p: float | Sequence[float],
        *,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for arg, val in (("n_networks", n_networks), ("in_features", in_features)):
            if not isinstance(val, int) or val < 1:
                raise expected(arg, "a positive integer", val)
        if not isinstance(hidden, int) or hidden < 1:
            raise expected("hidden", "a positive integer", hidden)
        rates = [float(p)] * n_networks if isinstance(p, (int, float)) else [float(v) for v in p]
        if len(rates) != n_networks or not all(0 <= v < 1 for v in rates):
            raise expected("p", f"a rate in [0, 1) or {n_networks} such rates", p)
        self.n_networks, self.in_features, self.hidden = n_networks, in_features, hidden
        g, q, h = n_networks, in_features, hidden
        self.w1 = nn.Parameter(torch.empty(g, q, h, dtype=dtype))
        self.b1 = nn.Parameter(torch.zeros(g, 1, h, dtype=dtype))
        self.w2 = nn.Parameter(torch.empty(g, h, 1, dtype=dtype))
        self.b2 = nn.Parameter(torch.zeros(g, 1, 1, dtype=dtype))
        self.register_buffer("p", torch.tensor(rates, dtype=dtype))
        self.register_buffer("x_shift", torch.zeros(g, q, dtype=dtype))
        self.register_buffer("x_scale", torch.ones(g, q, dtype=dtype))
        self.register_buffer("y_shift", torch.zeros(g, dtype=dtype))
        self.register_buffer("y_scale", torch.ones(g, dtype=dtype))
        self._groups: list[tuple[int, int, float]] = []
        start = 0
        for i in range(1, g + 1):
            if i == g or rates[i] != rates[start]:
                self._groups.append((start, i, rates[start]))
                start = i
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Glorot-uniform weights (Keras' default, as in the authors' code), zero biases."""
        with torch.no_grad():
            for w in (self.w1, self.w2):
                fan_in, fan_out = w.shape[1], w.shape[2]
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                w.copy_(torch.rand(w.shape, generator=generator, dtype=w.dtype) * 2 - 1)
                w.mul_(bound)
            self.b1.zero_()
            self.b2.zero_()

    def set_standardization(self, x_shift: Tensor, x_scale: Tensor, y_shift: Tensor, y_scale: Tensor) -> None:
        """Set each network's input ``(G, Q)`` and target ``(G,)`` shift and scale."""
        with torch.no_grad():
            for buf, val in (
                (self.x_shift, x_shift),
                (self.x_scale, x_scale),
                (self.y_shift, y_shift),
                (self.y_scale, y_scale),
            ):
                buf.copy_(torch.as_tensor(val, dtype=buf.dtype).expand_as(buf))

    def _dropout(self, x: Tensor) -> Tensor:
        """Per-network dropout of ``(N, G, F)``: one functional call per rate group."""
        if len(self._groups) == 1:
            return F.dropout(x, self._groups[0][2], training=self.training)
        return torch.cat(
            [F.dropout(x[:, a:b], rate, training=self.training) for a, b, rate in self._groups],
            dim=1,
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(N, G, Q)`` raw inputs (row n of network g) -> ``(N, G)`` original-scale outputs."""
        if x.dim() != 3 or x.shape[1:] != (self.n_networks, self.in_features):
            raise expected("x", f"a tensor of shape (N, {self.n_networks}, {self.in_features})", x.shape)
        z = self._dropout((x - self.x_shift) / self.x_scale)
        hid = torch.baddbmm(self.b1, z.transpose(0, 1), self.w1)  # (G, N, H)
        hid = self._dropout(F.relu(hid).transpose(0, 1))  # (N, G, H)
        out = torch.baddbmm(self.b2, hid.transpose(0, 1), self.w2)  # (G, N, 1)
        return out[..., 0].T * self.y_scale + self.y_shift

    def member(self, g: int) -> nn.Module:
        """A copy of network ``g`` as an ordinary module ``(N, Q) -> (N, 1)`` (original scale)."""
        if not isinstance(g, int) or not 0 <= g < self.n_networks:
            raise expected("g", f"an integer in [0, {self.n_networks})", g)
        return _SingleMLP(self, g)


# --------------------------------------------------------------------------------------------
# Training: all networks of a stage at once
# --------------------------------------------------------------------------------------------


def _epoch_draws(
    generator: torch.Generator, streams: int, rows: int, width: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """One epoch's randomness: data order ``(S, n)`` and dropout uniforms ``(S, n, width)``.

    Row ``k`` of stream ``s`` is the k-th example seen by every network of split ``s`` in this
    epoch, and ``uniforms[s, k, :Q]`` / ``[s, k, Q:]`` decide its input / hidden dropout masks
    (unit kept when ``u >= p``).
    """
    order = torch.rand(streams, rows, generator=generator).argsort(dim=1)
    uniforms = torch.rand(streams, rows, width, generator=generator, dtype=dtype)
    return order, uniforms


def _rate_groups(rates: Tensor, s: int) -> int:
    """Smallest R such that each split's J networks form R runs of equal length with one rate."""
    j = rates.numel() // s
    for r in range(1, j + 1):
        if j % r == 0:
            view = rates.view(s, r, j // r)
            if bool((view == view[..., :1]).all()):
                return r
    return j


def train_batched(
    model: BatchedMLP,
    x: Tensor,
    y: Tensor,
    *,
    weight_decay: Tensor,
    epochs: int,
    batch_size: int,
    lr: float = 1e-3,
    seed: int = 0,
    on_epoch: Callable[[int], None] | None = None,
) -> BatchedMLP:
    """Train every network of ``model`` with Adam on squared error plus the prior weight decay.

    Network ``g = s * J + j`` (``J = G // S``) trains on split ``s``:
    ``loss_g = mean_batch (f_g(x) - y)^2 + weight_decay[g] * (||w1_g||^2 + ||w2_g||^2)``.
    The J networks of a split see the same mini-batches and the same uniform draws (their masks
    differ only through their rates), so each network is trained exactly as if alone, and the
    grid's members are compared under common random numbers.

    For speed the networks of a split with the same rate (``T`` of them, consecutive) share
    their masked inputs and are laid side by side in one ``(Q, T * H)`` matrix; gradients are
    written out by hand for the two-layer network (no autograd) and one elementwise Adam step
    (PyTorch's formula, lr 1e-3, betas (0.9, 0.999), eps 1e-8) updates all parameters, which
    is the same as training the G networks one by one.

    Args:
        model: the networks; trained in place (its standardisation buffers are not used: ``x``
            and ``y`` come standardised).
        x: ``(S, n, Q)`` standardised inputs of each split's training rows.
        y: ``(S, n)`` standardised targets.
        weight_decay: ``(G,)`` lambda of each network (coefficient of ``||W||^2``).
        epochs: passes over the data; each draws a fresh order per split.
        batch_size: rows per step (the last step of an epoch takes the remainder).
        lr: Adam's learning rate.
        seed: seeds the data order and the dropout draws.
        on_epoch: called with the epoch index after each epoch.

    Returns:
        ``model``.
    """
    if x.dim() != 3 or y.shape != x.shape[:2]:
        raise expected("x, y", "tensors of shapes (S, n, Q) and (S, n)", (x.shape, y.shape))
    s, n, q = x.shape
    g, h = model.n_networks, model.hidden
    if q != model.in_features or g % s:
        raise expected("x", f"(S, n, {model.in_features}) with S dividing G = {g}", tuple(x.shape))
    weight_decay = torch.as_tensor(weight_decay, dtype=x.dtype)
    if weight_decay.shape != (g,):
        raise expected("weight_decay", f"a tensor of shape ({g},)", tuple(weight_decay.shape))
    if not isinstance(epochs, int) or epochs < 0:
        raise expected("epochs", "a non-negative integer", epochs)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise expected("batch_size", "a positive integer", batch_size)
    dt = x.dtype
    r = _rate_groups(model.p, s)
    t = g // (s * r)  # networks per (split, rate) group
    sr, th = s * r, t * h
    rate = model.p.to(dt).view(s, r, t)[..., :1, None]  # (S, R, 1, 1)
    inv_keep = 1.0 / (1.0 - rate)
    # Working layout: group (s, r) holds its T networks side by side.
    sizes = [sr * q * th, sr * th, sr * th, sr * t]
    shapes = [(sr, q, th), (sr, 1, th), (sr, 1, th), (sr, 1, t)]
    flat = torch.empty(sum(sizes), dtype=dt)
    grad = torch.zeros_like(flat)
    params, grads = [], []
    offset = 0
    for size, shape in zip(sizes, shapes, strict=True):
        params.append(flat[offset : offset + size].view(shape))
        grads.append(grad[offset : offset + size].view(shape))
        offset += size
    w1, b1, w2, b2 = params
    gw1, gb1, gw2, gb2 = grads
    with torch.no_grad():
        w1.copy_(model.w1.detach().to(dt).view(sr, t, q, h).permute(0, 2, 1, 3).reshape(sr, q, th))
        b1.copy_(model.b1.detach().to(dt).reshape(sr, 1, th))
        w2.copy_(model.w2.detach().to(dt).reshape(sr, 1, th))
        b2.copy_(model.b2.detach().to(dt).reshape(sr, 1, t))
    wd2 = (2.0 * weight_decay).view(sr, 1, t, 1).expand(sr, 1, t, h).reshape(sr, 1, th)
    w2v = w2.view(sr, 1, t, h)
    exp_avg, exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for epoch in range(epochs):
            order, uniforms = _epoch_draws(gen, s, n, q + h, dt)
            xe = x.gather(1, order.unsqueeze(-1).expand(s, n, q))
            ye = y.gather(1, order)
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                b = stop - start
                keep = (uniforms[:, None, start:stop] >= rate) * inv_keep  # (S, R, b, Q + H)
                xd = (xe[:, None, start:stop] * keep[..., :q]).view(sr, b, q)
                z1 = torch.baddbmm(b1, xd, w1).view(sr, b, t, h)
                mask = (z1 > 0) * keep[..., q:].reshape(sr, b, 1, h)  # d dropout(relu) / d z1
                hd = z1 * mask
                out = (hd * w2v).sum(-1).add_(b2)  # (SR, b, T)
                resid = (out.view(s, r, b, t) - ye[:, None, start:stop, None]).mul_(2.0 / b)
                resid = resid.view(sr, b, t)
                torch.sum(resid, 1, keepdim=True, out=gb2)
                torch.sum((hd * resid[..., None]).view(sr, b, th), 1, keepdim=True, out=gw2)
                dz1 = (resid[..., None] * w2v).mul_(mask).view(sr, b, th)
                torch.sum(dz1, 1, keepdim=True, out=gb1)
                torch.bmm(xd.transpose(1, 2), dz1, out=gw1)
                gw1.addcmul_(w1, wd2)
                gw2.addcmul_(w2, wd2)
                # Adam (torch.optim.Adam's formula), one pass over all parameters
                step += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2**step)).add_(eps)
                flat.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**step))
            if on_epoch is not None:
                on_epoch(epoch)
        model.w1.copy_(w1.view(sr, q, t, h).permute(0, 2, 1, 3).reshape(g, q, h))
        model.b1.copy_(b1.view(g, 1, h))
        model.w2.copy_(w2.view(g, h, 1))
        model.b2.copy_(b2.view(g, 1, 1))
    return model


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------


def _standardize(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-split statistics of ``x (S, n, Q)``, ``y (S, n)`` as in the authors' code.

    Population std (numpy's default); inputs with zero spread get scale 1.
    """
    x_shift, x_scale = x.mean(1), x.std(1, correction=0)
    x_scale = torch.where(x_scale == 0, torch.ones_like(x_scale), x_scale)
    return x_shift, x_scale, y.mean(1), y.std(1, correction=0)


def _mc_predict(
    member: nn.Module, x: Tensor, y: Tensor, tau: float, samples: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """MC prediction of one network through the engine: mean, per-point LL, dropout-off mean."""
    import bayesdrop as bd

    mc = bd.wrap(member, task="regression", tau=tau)  # type: ignore[attr-defined]
    pred = mc.predict(x, samples=samples, seed=seed, target=y[:, None])
    with torch.no_grad():
        standard = bd.unwrap(mc).eval()(x)[:, 0]  # type: ignore[attr-defined]
    return pred.mean[:, 0], pred.log_likelihood, standard


def _fit_stage(
    x: Tensor,
    y: Tensor,
    configs: list[list[tuple[float, float]]],
    *,
    hidden: int,
    epochs: int,
    batch_size: int,
    seed: int,
    dtype: torch.dtype,
) -> BatchedMLP:
    """Train networks ``configs[s][j] = (p, tau)`` on split ``s``'s rows ``x (S, n, Q)``."""
    s, n, q = x.shape
    flat = [c for row in configs for c in row]
    gen = torch.Generator().manual_seed(int(seed))
    model = BatchedMLP(len(flat), q, hidden, [p for p, _ in flat], dtype=dtype, generator=gen)
    j = len(configs[0])
    x_shift, x_scale, y_shift, y_scale = _standardize(x, y)
    model.set_standardization(
        x_shift.repeat_interleave(j, 0),
        x_scale.repeat_interleave(j, 0),
        y_shift.repeat_interleave(j, 0),
        y_scale.repeat_interleave(j, 0),
    )
    wd = torch.tensor([LENGTH_SCALE**2 * (1 - p) / (2 * n * tau) for p, tau in flat], dtype=dtype)
    xs = ((x - x_shift[:, None]) / x_scale[:, None]).to(dtype)
    ys = ((y - y_shift[:, None]) / y_scale[:, None]).to(dtype)
    return train_batched(model, xs, ys, weight_decay=wd, epochs=epochs, batch_size=batch_size, seed=seed + 1)


def _stack_splits(name: str, root: str | Path, splits: Sequence[int]) -> dict[str, Any]:
    from ..data.uci import load_uci

    loaded = [load_uci(name, root, i) for i in splits]
    first = loaded[0]
    return {
        "x_train": torch.stack([d.x_train for d in loaded]),
        "y_train": torch.stack([d.y_train for d in loaded]),
        "x_test": torch.stack([d.x_test for d in loaded]),
        "y_test": torch.stack([d.y_test for d in loaded]),
        "n_splits": first.n_splits,
        "n_hidden": first.n_hidden,
        "n_epochs": first.n_epochs,
        "dropout_rates": first.dropout_rates,
        "tau_values": first.tau_values,
    }


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    v = torch.tensor(list(values), dtype=torch.float64)
    se = float(v.std(correction=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def run_uci(
    name: str,
    root: str | Path,
    setting: str = "table1",
    *,
    n_splits: int | None = None,
    epochs: int | None = None,
    samples: int = 10_000,
    val_samples: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one data set through one setting of the protocol.

    Args:
        name: a key of :data:`bayesdrop.data.uci.UCI_DATASETS` (or a folder name).
        root: folder holding the UCI data sets.
        setting: a key of :data:`SETTINGS`.
        n_splits: use only the first ``n_splits`` splits (default: all).
        epochs: override the setting's number of epochs (for timing runs and tests).
        samples: MC samples for the test predictions (the protocol's T = 10,000).
        val_samples: MC samples for the validation log-likelihoods that select p and tau.
        seed: seeds initialisation, data order, dropout draws and MC sampling.
        dtype: training dtype.
        log: receives progress lines.

    Returns:
        A JSON-ready dict: rmse_mean, rmse_se, ll_mean, ll_se, n_splits, samples, epochs, the
        per-split numbers and choices, and the wall-clock seconds of each stage.
    """
    if setting not in SETTINGS:
        raise expected("setting", f"one of {sorted(SETTINGS)}", setting)
    from ..data.uci import uci_dataset_info

    cfg = SETTINGS[setting]
    info = uci_dataset_info(name, root)
    short = str(info["name"])
    total_splits = int(info["n_splits"])  # type: ignore[arg-type]
    if n_splits is None:
        n_splits = total_splits
    if not isinstance(n_splits, int) or not 1 <= n_splits <= total_splits:
        raise expected("n_splits", f"an integer in [1, {total_splits}]", n_splits)
    say = log or (lambda _msg: None)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    data = _stack_splits(short, root, range(n_splits))
    n_epochs = epochs if epochs is not None else cfg.epoch_multiplier * data["n_epochs"]
    rates = cfg.dropout_rates if cfg.dropout_rates is not None else data["dropout_rates"]
    grid = [(float(p), float(t)) for p in rates for t in data["tau_values"]]
    hidden = data["n_hidden"]
    x_train, y_train = data["x_train"], data["y_train"]
    n_train = x_train.shape[1]
    times: dict[str, float] = {}

    # Stage 1: select (p, tau) per split on the last 20% of its training rows.
    chosen: list[tuple[float, float]]
    val_ll: list[list[float]] = []
    if len(grid) > 1:
        cut = int(0.8 * n_train)
        t0, c0 = time.perf_counter(), time.process_time()
        model = _fit_stage(
            x_train[:, :cut],
            y_train[:, :cut],
            [grid] * n_splits,
            hidden=hidden,
            epochs=n_epochs,
            batch_size=cfg.batch_size,
            seed=seed,
            dtype=dtype,
        )
        times["select_train_s"] = time.perf_counter() - t0
        times["select_train_cpu_s"] = time.process_time() - c0
        say(f"{short} {setting}: trained {model.n_networks} networks for selection in {times['select_train_s']:.1f} s")
        t0, c0 = time.perf_counter(), time.process_time()
        chosen = []
        for s in range(n_splits):
            lls = []
            for j, (_, tau) in enumerate(grid):
                member = model.member(s * len(grid) + j)
                xv, yv = x_train[s, cut:].to(dtype), y_train[s, cut:].to(dtype)
                _, ll, _ = _mc_predict(member, xv, yv, tau, val_samples, seed + 1000 * s + j)
                lls.append(float(ll.double().mean()))
            val_ll.append(lls)
            chosen.append(grid[max(range(len(grid)), key=lls.__getitem__)])
        times["select_predict_s"] = time.perf_counter() - t0
        times["select_predict_cpu_s"] = time.process_time() - c0
    else:
        chosen = [grid[0]] * n_splits

    # Stage 2: retrain each split's choice on its whole training split; test with T samples.
    t0, c0 = time.perf_counter(), time.process_time()
    model = _fit_stage(
        x_train,
        y_train,
        [[c] for c in chosen],
        hidden=hidden,
        epochs=n_epochs,
        batch_size=cfg.batch_size,
        seed=seed + 7,
        dtype=dtype,
    )
    times["train_s"] = time.perf_counter() - t0
    times["train_cpu_s"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    rmse, ll, rmse_standard = [], [], []
    for s in range(n_splits):
        xt, yt = data["x_test"][s].to(dtype), data["y_test"][s].to(dtype)
        mean, lls, standard = _mc_predict(model.member(s), xt, yt, chosen[s][1], samples, seed + 10_000 + s)
        yt64 = yt.double()
        rmse.append(float(((mean.double() - yt64) ** 2).mean().sqrt()))
        rmse_standard.append(float(((standard.double() - yt64) ** 2).mean().sqrt()))
        ll.append(float(lls.double().mean()))
    times["test_predict_s"] = time.perf_counter() - t0
    times["test_predict_cpu_s"] = time.process_time() - c0
    times["total_s"] = time.perf_counter() - t_start
    times["cpu_s"] = time.process_time() - cpu_start
    rmse_mean, rmse_se = _mean_se(rmse)
    ll_mean, ll_se = _mean_se(ll)
    rmse_std_mean, rmse_std_se = _mean_se(rmse_standard)
    say(
        f"{short} {setting}: RMSE {rmse_mean:.4g} ± {rmse_se:.2g}, LL {ll_mean:.4g} ± "
        f"{ll_se:.2g} ({times['total_s']:.1f} s)"
    )
    return {
        "dataset": short,
        "title": info["title"],
        "setting": setting,
        "rmse_mean": rmse_mean,
        "rmse_se": rmse_se,
        "ll_mean": ll_mean,
        "ll_se": ll_se,
        "rmse_standard_mean": rmse_std_mean,
        "rmse_standard_se": rmse_std_se,
        "n_splits": n_splits,
        "samples": samples,
        "val_samples": val_samples if len(grid) > 1 else 0,
        "epochs": n_epochs,
        "batch_size": cfg.batch_size,
        "grid": [list(c) for c in grid],
        "chosen": [list(c) for c in chosen],
        "val_ll": val_ll,
        "per_split": {"rmse": rmse, "ll": ll, "rmse_standard": rmse_standard},
        "seconds": times["total_s"],
        "cpu_seconds": times["cpu_s"],
        "timing": times,
        "seed": seed,
        "dtype": str(dtype).replace("torch.", ""),
        "machine": _machine(),
        "load_average_at_start": load_start,
        "started_utc": started,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _machine() -> str:
    cores = os.cpu_count()
    return (
        f"{platform.machine()} {platform.processor() or ''} {cores} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    ).replace("  ", " ")


# --------------------------------------------------------------------------------------------
# Results: JSON (merged) and the Markdown table
# --------------------------------------------------------------------------------------------


def _fmt(value: float, se: float, decimals: int) -> str:
    return f"{value:.{decimals}f} ±{se:.{decimals}f}"


def _mark(ours: float, ours_se: float, ref: float, ref_se: float, decimals: int, higher: bool):
    """'better' / 'equal' / 'worse': equal when the gap is within both SEs plus rounding."""
    tol = ours_se + ref_se + 0.5 * 10.0**-decimals
    gap = (ours - ref) if higher else (ref - ours)
    if abs(gap) <= tol:
        return "= equal"
    return "▲ better" if gap > 0 else "▼ worse"


def _modal_choice(chosen: Sequence[Sequence[float]]) -> str:
    pairs = [tuple(c) for c in chosen]
    best = max(set(pairs), key=pairs.count)
    return f"{best[0]:g}, {best[1]:g} ({pairs.count(best)}/{len(pairs)})"


def render_markdown(results: dict[str, Any]) -> str:
    """The side-by-side Markdown table of every setting in ``results`` (``uci.json``'s dict)."""
    from ..data.uci import UCI_DATASETS

    lines = [
        "# UCI regression: bayesdrop vs Gal & Ghahramani (2016)",
        "",
        "Generated by `python -m bayesdrop.reproduce.uci` from `uci.json` (do not edit by hand).",
        "Mean ± standard error over the published splits (SE = sample std / sqrt(splits)).",
        "Marks: **▲ better** / **= equal** (gap within our SE + the paper's SE + half the paper's",
        "last printed digit) / **▼ worse**, for RMSE (lower is better) and test log-likelihood",
        "(higher is better).",
        "",
    ]
    for key, cfg in SETTINGS.items():
        rows = results.get("settings", {}).get(key, {})
        if not rows:
            continue
        ref_name = {"paper_table1": "paper Table 1 (Dropout)", "grid_2018": "authors' 2018 grid"}
        lines += [
            f"## Setting `{key}`",
            "",
            cfg.description + ".",
            "",
            f"| data set | splits | epochs | T | RMSE (ours) | RMSE ({ref_name[cfg.reference]}) | "
            "RMSE | LL (ours) | LL (published) | LL | most chosen (p, tau) | wall s (CPU s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for short in UCI_DATASETS:
            r = rows.get(short)
            if r is None:
                continue
            (pr, pr_se), (pl, pl_se) = PUBLISHED[cfg.reference][short]
            dr, dl = _DECIMALS.get((cfg.reference, short), (2, 2))
            dr_ours = max(dr, 2 if r["rmse_mean"] >= 0.1 else 4)
            lines.append(
                f"| {r['title']} | {r['n_splits']} | {r['epochs']} | {r['samples']} | "
                f"{_fmt(r['rmse_mean'], r['rmse_se'], dr_ours)} | {_fmt(pr, pr_se, dr)} | "
                f"{_mark(r['rmse_mean'], r['rmse_se'], pr, pr_se, dr, higher=False)} | "
                f"{_fmt(r['ll_mean'], r['ll_se'], 2)} | {_fmt(pl, pl_se, dl)} | "
                f"{_mark(r['ll_mean'], r['ll_se'], pl, pl_se, dl, higher=True)} | "
                f"{_modal_choice(r['chosen'])} | "
                f"{r['seconds']:.0f} ({r.get('cpu_seconds', float('nan')):.0f}) |"
            )
        total = sum(r["seconds"] for r in rows.values())
        cpu = sum(r.get("cpu_seconds", float("nan")) for r in rows.values())
        machines = sorted({r["machine"] for r in rows.values()})
        loads = [r.get("load_average_at_start", float("nan")) for r in rows.values()]
        table_run = results.get("table_runs", {}).get(key)
        if table_run:
            names = table_run["datasets"]
            what = "Whole table, one command" if len(names) == len(UCI_DATASETS) else "Last run of several data sets"
            lines += [
                "",
                f"**{what}:** {len(names)} data sets ({', '.join(sorted(names))}) in "
                f"{table_run['wall_seconds']:.0f} s ({table_run['wall_seconds'] / 60:.1f} min) of elapsed time, "
                f"{table_run['cpu_seconds']:.0f} s of CPU time, {table_run['jobs']} worker process(es), "
                f"on {table_run['machine']}, 1-minute load average {table_run['load_average_at_start']:.1f} "
                f"at the start ({table_run['started_utc']} to {table_run['finished_utc']}).",
            ]
        lines += [
            "",
            f"Sum over data sets of wall-clock {total:.0f} s ({total / 60:.1f} min) and of CPU "
            f"time {cpu:.0f} s ({cpu / 60:.1f} min) on {'; '.join(machines)}; data sets may run "
            "in parallel processes, so the elapsed time of the table is shorter than the sum; "
            f"1-minute load average at the start of each data set {min(loads):.1f} to "
            f"{max(loads):.1f} on this shared machine.",
            "",
        ]
    for key, rows in results.get("estimates", {}).items():
        done = results.get("settings", {}).get(key, {})
        lines += [
            f"## Setting `{key}`: time of the full run, EXTRAPOLATED from a shorter one",
            "",
            "Measured with fewer epochs (all splits, the full grid); training time scaled",
            "linearly to the full epochs; prediction time (which does not depend on the epochs)",
            "taken from the full `table1` run of the same data set where there is one (same grid,",
            "splits and T), else the test-prediction time scaled linearly to T = 10,000.",
            "Estimates, not runs; the last column gives the full run's measured time where it was run",
            "(CPU time is the comparable one: wall-clock depends on what else shared the cores).",
            "",
            "| data set | splits | measured epochs | measured T | measured s (CPU s) | "
            "full epochs | estimated s (CPU s) | prediction time from | load avg | full run, measured s (CPU s) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for short in UCI_DATASETS:
            e = rows.get(short)
            if e is None:
                continue
            lines.append(
                f"| {UCI_DATASETS[short].title} | {e['n_splits']} | {e['measured_epochs']} | "
                f"{e['measured_samples']} | {e['measured_seconds']:.0f} "
                f"({e['measured_cpu_seconds']:.0f}) | "
                f"{e['full_epochs']} | {e['extrapolated_seconds']:.0f} "
                f"({e['extrapolated_cpu_seconds']:.0f}) | "
                f"{e.get('prediction_time_from') or 'this run, scaled'} | "
                f"{e['load_average_at_start']:.1f} | "
                + (
                    f"{done[short]['seconds']:.0f} ({done[short]['cpu_seconds']:.0f}) |"
                    if short in done and done[short]["epochs"] == e["full_epochs"]
                    else "not run |"
                )
            )
        lines.append("")
    notes = results.get("notes")
    if notes:
        lines += ["## Notes", ""] + [str(n) for n in notes] + [""]
    return "\n".join(lines)


def write_results(
    out: str | Path,
    new: Sequence[dict[str, Any]],
    *,
    estimates: Sequence[dict[str, Any]] = (),
    table_runs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Merge run records (timing estimates, whole-table timings) into ``<out>/uci.json``; regenerate ``uci.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "uci.json"
    key = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"bayesdrop-uci-{key}.lock"
    with open(lock_path, "w") as lock:  # runs in parallel processes merge safely
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        results: dict[str, Any] = {"settings": {}}
        if path.is_file():
            results = json.loads(path.read_text(encoding="utf-8"))
            results.setdefault("settings", {})
        for rec in new:
            results["settings"].setdefault(rec["setting"], {})[rec["dataset"]] = rec
        for est in estimates:
            results.setdefault("estimates", {}).setdefault(est["setting"], {})[est["dataset"]] = est
        for run in table_runs:  # the elapsed time of a whole table, per setting (latest kept)
            results.setdefault("table_runs", {})[run["setting"]] = run
        write_text_atomic(path, json.dumps(results, indent=1, sort_keys=False) + "\n")
        notes_path = out / "uci_notes.md"
        if notes_path.is_file():
            results = {**results, "notes": [notes_path.read_text(encoding="utf-8")]}
        write_text_atomic(out / "uci.md", render_markdown(results))
    return results


def extrapolate(
    rec: dict[str, Any],
    full_epochs: int,
    full_samples: int = 10_000,
    predict_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time of a full-length run from a shorter one (a labelled estimate, not a measurement).

    Training time is scaled by ``full_epochs / epochs``. Prediction time is taken from
    ``predict_from`` when given (a full run of the same data set with the same grid, splits and
    numbers of samples, e.g. its ``table1`` record: prediction cost does not depend on the
    epochs); otherwise test-prediction time is scaled by ``full_samples / samples`` (linear up
    to fixed overheads, so the estimate errs high) and validation-prediction time kept.
    """
    t = rec["timing"]
    ratio = full_epochs / max(rec["epochs"], 1)
    sample_ratio = full_samples / max(rec["samples"], 1)
    # older records lack per-stage CPU time: then scale this run's prediction time instead
    use = predict_from is not None and "test_predict_cpu_s" in predict_from["timing"]
    est: dict[str, Any] = {
        "dataset": rec["dataset"],
        "setting": rec["setting"],
        "measured_epochs": rec["epochs"],
        "full_epochs": full_epochs,
        "measured_samples": rec["samples"],
        "full_samples": full_samples,
        "n_splits": rec["n_splits"],
        "measured_seconds": t["total_s"],
        "measured_cpu_seconds": t["cpu_s"],
        "prediction_time_from": predict_from["setting"] if use else None,  # type: ignore[index]
        "machine": rec["machine"],
        "load_average_at_start": rec["load_average_at_start"],
    }
    for unit in ("", "cpu_"):
        train = t.get(f"select_train_{unit}s", 0.0) + t[f"train_{unit}s"]
        if use:
            p = predict_from["timing"]  # type: ignore[index]
            predict = p.get(f"select_predict_{unit}s", 0.0) + p[f"test_predict_{unit}s"]
        else:
            predict = t.get(f"select_predict_{unit}s", 0.0) + t[f"test_predict_{unit}s"] * sample_ratio
        est[f"extrapolated_{unit}seconds"] = train * ratio + predict
    return est


def log_to_mlflow(rec: dict[str, Any], tracking_uri: str, experiment: str = "gal2016-uci", artifact=None) -> str:
    """Log one data set's run record as an MLflow run; returns the run id.

    Params: the protocol (data set, setting, epochs, splits, T, batch size, grid, seed, machine).
    Metrics: the table's numbers (RMSE, log-likelihood, their standard errors, seconds) and, at
    step = split index, each split's RMSE, log-likelihood and chosen (p, tau).
    """
    from ..experiments._tracking import MlflowTracker

    tracker = MlflowTracker(tracking_uri, experiment)
    params = {k: rec[k] for k in ("dataset", "setting", "epochs", "n_splits", "samples", "batch_size", "seed")}
    params |= {"grid_size": len(rec["grid"]), "dtype": rec["dtype"], "machine": rec["machine"]}
    tags = {"bayesdrop.reproduce": "gal2016-uci", "bayesdrop.run_key": f"uci/{rec['setting']}/{rec['dataset']}"}
    tracker.start(f"{rec['dataset']}-{rec['setting']}", params, tags)
    try:
        tracker.log_metrics(
            {k: rec[k] for k in ("rmse_mean", "rmse_se", "ll_mean", "ll_se", "seconds", "cpu_seconds")}
            | {"rmse_standard_mean": rec["rmse_standard_mean"], "rmse_standard_se": rec["rmse_standard_se"]}
        )
        per_split = rec["per_split"]
        for i, (rmse, ll) in enumerate(zip(per_split["rmse"], per_split["ll"], strict=True)):
            p, tau = rec["chosen"][i]
            tracker.log_metrics({"split_rmse": rmse, "split_ll": ll, "split_p": p, "split_tau": tau}, step=i)
        if artifact is not None and Path(artifact).is_file():
            tracker.log_artifact(artifact)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end("FINISHED")
    return str(tracker.run_id)


def _expected_cost(name: str, setting: str, out: str | Path) -> float:
    """CPU seconds of the last recorded run of this data set (for scheduling the largest first)."""
    path = Path(out) / "uci.json"
    if path.is_file():
        try:
            done = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return 0.0
        rec = done.get("settings", {}).get(setting, {}).get(name) or done.get("estimates", {}).get(setting, {}).get(
            name
        )
        if rec:
            return float(rec.get("cpu_seconds", rec.get("extrapolated_cpu_seconds", 0.0)))
    return 0.0


def _worker_log(name: str, message: str) -> None:
    print(f"[{name}] {message}", flush=True)


def _run_in_worker(name: str, kwargs: dict[str, Any], threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    return run_uci(name, log=functools.partial(_worker_log, name), **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m bayesdrop.reproduce.uci --help``."""
    from ..data.uci import UCI_DATASETS

    parser = argparse.ArgumentParser(
        prog="python -m bayesdrop.reproduce.uci",
        description="Reproduce the UCI regression table of Gal & Ghahramani (2016).",
    )
    parser.add_argument("--dataset", default="all", help="'all' or comma-separated names")
    parser.add_argument("--setting", default="table1", choices=sorted(SETTINGS))
    parser.add_argument("--root", default="../shared/data/uci", help="UCI data folder")
    parser.add_argument("--out", default="docs/results", help="folder for uci.json / uci.md")
    parser.add_argument("--splits", type=int, default=None, help="first N splits only")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs (timing)")
    parser.add_argument("--samples", type=int, default=10_000, help="test MC samples")
    parser.add_argument("--val-samples", type=int, default=100, help="validation MC samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: tiny ops gain nothing from more)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="data sets run in this many worker processes at once (largest first); 2 on a 2-core machine",
    )
    parser.add_argument(
        "--mlflow",
        default="sqlite:///mlflow.db",
        metavar="URI",
        help="MLflow tracking URI: one run per data set and setting in experiment 'gal2016-uci'",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--no-write", action="store_true", help="print only, write nothing")
    parser.add_argument(
        "--samples-full",
        type=int,
        default=10_000,
        help="with --estimate-from-epochs: the T to extrapolate to",
    )
    parser.add_argument("--render-only", action="store_true", help="regenerate uci.md from uci.json and exit")
    parser.add_argument(
        "--estimate-from-epochs",
        type=int,
        default=None,
        metavar="E",
        help="timing only: run E epochs and record the extrapolated time of the full run "
        "(under 'estimates' in uci.json; the accuracy of such a run is not tabulated)",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        write_results(args.out, [])
        return 0
    if args.jobs < 1:
        parser.error(f"argument --jobs: expected an integer >= 1, got {args.jobs}")
    if args.threads < 1:
        parser.error(f"argument --threads: expected an integer >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    names = list(UCI_DATASETS) if args.dataset == "all" else args.dataset.split(",")
    for name in names:
        if name not in UCI_DATASETS:
            parser.error(f"argument --dataset: expected 'all' or names among {sorted(UCI_DATASETS)}, got {name!r}")
    common = {
        "root": args.root,
        "setting": args.setting,
        "n_splits": args.splits,
        "epochs": args.estimate_from_epochs or args.epochs,
        "samples": args.samples,
        "val_samples": args.val_samples,
    }
    # a data set's seed does not depend on which others run with it
    jobs = {name: common | {"seed": args.seed + 100 * list(UCI_DATASETS).index(name)} for name in names}
    table_start, table_started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    records: list[dict[str, Any]] = []

    def finish(rec: dict[str, Any]) -> None:
        records.append(rec)
        if args.estimate_from_epochs:
            _record_estimate(rec, args)
        elif not args.no_write:
            write_results(args.out, [rec])
            if not args.no_mlflow:
                run_id = log_to_mlflow(rec, args.mlflow, artifact=Path(args.out) / "uci.md")
                print(f"[{rec['dataset']}] logged to MLflow run {run_id} ({args.mlflow})", flush=True)

    try:
        if args.jobs == 1 or len(names) == 1:
            for name in names:
                finish(run_uci(name, log=functools.partial(_worker_log, name), **jobs[name]))
        else:
            order = sorted(names, key=lambda n: -_expected_cost(n, args.setting, args.out))
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
                futures = [pool.submit(_run_in_worker, name, jobs[name], args.threads) for name in order]
                for future in concurrent.futures.as_completed(futures):
                    finish(future.result())
    except BayesdropError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(records) > 1 and not args.estimate_from_epochs:
        wall = time.perf_counter() - table_start
        cpu = sum(r["cpu_seconds"] for r in records)
        run = {
            "setting": args.setting,
            "datasets": [r["dataset"] for r in records],
            "jobs": args.jobs,
            "wall_seconds": wall,
            "cpu_seconds": cpu,
            "machine": _machine(),
            "load_average_at_start": load_start,
            "started_utc": table_started,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(f"{args.setting}: {len(records)} data sets in {wall:.0f} s wall ({cpu:.0f} s CPU), {args.jobs} job(s)")
        if not args.no_write:
            write_results(args.out, [], table_runs=[run])
    return 0


def _record_estimate(rec: dict[str, Any], args: argparse.Namespace) -> None:
    from ..data.uci import uci_dataset_info

    info = uci_dataset_info(rec["dataset"], args.root)
    full = SETTINGS[args.setting].epoch_multiplier * int(info["n_epochs"])  # type: ignore[arg-type]
    base = None
    path = Path(args.out) / "uci.json"
    if path.is_file():  # prediction time of a full run with the same grid and T
        done = json.loads(path.read_text(encoding="utf-8")).get("settings", {})
        for other in done.values():
            cand = other.get(rec["dataset"])
            if (
                cand
                and cand["grid"] == rec["grid"]
                and cand["n_splits"] == rec["n_splits"]
                and cand["samples"] == args.samples_full
            ):
                base = cand
    est = extrapolate(rec, full, args.samples_full, predict_from=base)
    print(
        f"{rec['dataset']} {args.setting}: estimated {est['extrapolated_seconds']:.0f} s "
        f"({est['extrapolated_cpu_seconds']:.0f} s CPU) for {full} epochs",
        flush=True,
    )
    if not args.no_write:
        write_results(args.out, [], estimates=[est])


if __name__ == "__main__":
    raise SystemExit(main())
