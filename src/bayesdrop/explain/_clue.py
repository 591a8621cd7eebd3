"""CLUE: Counterfactual Latent Uncertainty Explanations (Antorán et al., ICLR 2021).

For an input x the model is unsure about, CLUE searches the latent space of a generative model
for the decoded point x' = dec(z) closest to x that the model is sure about:

    minimise over z:  u(dec(z)) + (lambda / d) * dist(dec(z), x)  [+ w_pred * |p(dec(z)) - p(x)|_1]

with u the weighted predictive uncertainty (entropies in nats for classification, standard
deviations for regression), Adam from the encoder's mean. Every step is one engine call
(``predict(..., grad=True, consistent=True)``) for all the rows still optimising: the same S
sub-networks for every step and row (common random numbers, so the objective is deterministic
and a row's objective does not depend on which other rows are still running); the final
uncertainty is measured with fresh masks so that an explanation is not fitted to one mask set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

from .._errors import BayesdropError, expected

__all__ = [
    "Kind",
    "Distance",
    "ClueResult",
    "ClueSet",
    "clue",
    "clue_set",
    "conditional_clue",
    "uncertainty_of",
    "sensitivity",
]


class Kind(str, Enum):
    """Which uncertainty CLUE reduces."""

    TOTAL = "total"
    ALEATORIC = "aleatoric"
    EPISTEMIC = "epistemic"


class Distance(str, Enum):
    """The distance to the original input (on the encoded columns)."""

    L1 = "l1"
    L2 = "l2"


def _weights(uncertainty: str | Mapping[str, float]) -> dict[Kind, float]:
    if isinstance(uncertainty, str):
        try:
            return {Kind(uncertainty): 1.0}
        except ValueError:
            raise expected(
                "uncertainty", f"one of {[k.value for k in Kind]} or a mapping of them to weights", uncertainty
            ) from None
    if not isinstance(uncertainty, Mapping) or not uncertainty:
        raise expected("uncertainty", "a kind name or a non-empty mapping kind -> weight", uncertainty)
    out = {}
    for name, weight in uncertainty.items():
        try:
            out[Kind(name)] = float(weight)
        except ValueError:
            raise expected("uncertainty", f"keys among {[k.value for k in Kind]}", name) from None
    return out


def uncertainty_of(pred, uncertainty: str | Mapping[str, float] = "total") -> Tensor:
    """``(B,)`` weighted uncertainty of a :class:`bayesdrop.Prediction`: entropies (nats) for
    classification, standard deviations (of the summed output variances) for regression."""
    weights = _weights(uncertainty)
    out = torch.zeros(pred.mean.shape[0], dtype=pred.mean.dtype, device=pred.mean.device)
    for kind, weight in weights.items():
        value = getattr(pred, kind.value)
        if pred.task == "regression":
            value = (value.flatten(1).sum(1) + 1e-12).sqrt()
        out = out + weight * value
    return out


def _all_kinds(pred) -> dict[str, Tensor]:
    return {k.value: uncertainty_of(pred, k.value).detach() for k in Kind}


def _point(pred) -> Tensor:
    return pred.mean.argmax(1) if pred.task == "classification" else pred.mean.detach()


@dataclass
class ClueResult:
    """CLUEs of ``N`` inputs.

    Attributes:
        x: the inputs ``(N, *in)``; explanation: the CLUEs ``(N, *in)`` (categorical groups as
            hard one-hot); change: ``explanation - x``.
        z: latent codes ``(N, L)`` of the explanations.
        before, after: uncertainty of the input and of the explanation, ``{"total",
            "aleatoric", "epistemic"}`` -> ``(N,)``, both measured with fresh masks
            (``eval_samples`` samples).
        prediction_before, prediction_after: predicted class ``(N,)`` or mean ``(N, *out)``.
        distance: ``(N,)`` distance of the explanation to the input (as optimised).
        objective: ``(N,)`` the final objective on the optimisation's masks.
        steps: ``(N,)`` optimisation steps each row took; converged: ``(N,)`` whether it stopped
            early (its objective stopped improving).
        lam: the distance weight used.
    """

    x: Tensor
    explanation: Tensor
    z: Tensor
    before: dict[str, Tensor]
    after: dict[str, Tensor]
    prediction_before: Tensor
    prediction_after: Tensor
    distance: Tensor
    objective: Tensor
    steps: Tensor
    converged: Tensor
    lam: float = 0.0

    @property
    def change(self) -> Tensor:
        return self.explanation - self.x

    def reduction(self, kind: str = "total") -> Tensor:
        """``(N,)`` uncertainty removed: before - after."""
        return self.before[kind] - self.after[kind]


def _distance(a: Tensor, b: Tensor, how: Distance, scale: Tensor | None) -> Tensor:
    diff = (a - b).flatten(1)
    if scale is not None:
        diff = diff * scale
    return diff.abs().sum(1) if how is Distance.L1 else (diff.pow(2).sum(1) + 1e-12).sqrt()


def _check_positive(name: str, value, integer: bool = False) -> None:
    bad = isinstance(value, bool) or (integer and not isinstance(value, int)) or not value > 0
    if bad:
        raise expected(name, "a positive integer" if integer else "a positive number", value)


def clue(
    mc,
    vae,
    x: Tensor,
    *,
    uncertainty: str | Mapping[str, float] = "total",
    lam: float = 1.0,
    distance: str = "l1",
    scale: Tensor | None = None,
    steps: int = 50,
    lr: float = 0.1,
    samples: int = 64,
    eval_samples: int = 100,
    seed: int = 0,
    tolerance: float = 1e-4,
    patience: int = 5,
    immutable: Tensor | None = None,
    prediction_weight: float = 0.0,
    latent_radius: float | None = None,
    restarts: int = 1,
    restart_std: float = 0.5,
    batch_size: int = 512,
) -> ClueResult:
    """CLUEs of the rows of ``x`` ``(N, *in)`` for the wrapped model ``mc`` in the latent space of
    ``vae`` (a :class:`bayesdrop.explain.VAE`, or anything with ``encode(x) -> (mean, logvar)``
    and ``decode(z, hard=...)``).

    Args:
        uncertainty: ``"total"``, ``"aleatoric"``, ``"epistemic"`` or a mapping of them to
            weights (e.g. ``{"aleatoric": 1, "epistemic": 0.5}``).
        lam: weight of the distance term, divided by d (the number of input columns).
        distance: ``"l1"`` (default) or ``"l2"`` between ``dec(z)`` and ``x``; ``scale``
            ``(*in)`` multiplies each column's difference first (per-feature scaling).
        steps: at most this many Adam steps (learning rate ``lr``) per row.
        samples: MC samples S of the optimisation (fixed masks); ``eval_samples``: fresh
            samples of the reported uncertainties.
        seed: seeds the optimisation's masks (``seed``), the reported ones (other streams) and
            the restarts.
        tolerance, patience: a row stops once its objective improved by less than
            ``tolerance`` for ``patience`` consecutive steps; it keeps its best point.
        immutable: ``(*in)`` bool: columns that must keep the input's values.
        prediction_weight: weight of ``|p(dec(z)) - p(x)|_1`` (stay near the original
            prediction); 0 leaves it out.
        latent_radius: keep ``|z - z0|_2 <= latent_radius`` (projection after each step).
        restarts: optimisations per row (the first from the encoder's mean, the others from it
            plus N(0, ``restart_std``^2) noise); the lowest objective wins.
        batch_size: rows optimised together (memory is bounded by it).
    """
    kinds = _weights(uncertainty)
    how = Distance(distance) if isinstance(distance, str) and distance in {d.value for d in Distance} else None
    if how is None:
        raise expected("distance", f"one of {[d.value for d in Distance]}", distance)
    for name, value in (
        ("steps", steps),
        ("samples", samples),
        ("eval_samples", eval_samples),
        ("patience", patience),
        ("restarts", restarts),
        ("batch_size", batch_size),
    ):
        _check_positive(name, value, integer=True)
    for name, value in (("lr", lr), ("restart_std", restart_std)):
        _check_positive(name, value)
    if not lam >= 0 or not prediction_weight >= 0 or not tolerance >= 0:
        raise expected(
            "lam / prediction_weight / tolerance", "non-negative numbers", (lam, prediction_weight, tolerance)
        )
    if latent_radius is not None:
        _check_positive("latent_radius", latent_radius)
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise expected(
            "x", "a tensor of rows (N, *in)", type(x).__name__ if not isinstance(x, Tensor) else tuple(x.shape)
        )
    if immutable is not None:
        immutable = torch.as_tensor(immutable, dtype=torch.bool, device=x.device)
        if immutable.shape != x.shape[1:]:
            raise expected("immutable", f"a bool mask of shape {tuple(x.shape[1:])}", tuple(immutable.shape))
    if scale is not None:
        scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device).reshape(-1)
        if scale.numel() != x[0].numel():
            raise expected("scale", f"{x[0].numel()} per-column factors", scale.numel())
    d = x[0].numel()
    parts = []
    for start in range(0, x.shape[0], batch_size):
        rows = x[start : start + batch_size]
        best = None
        for restart in range(restarts):
            run = _optimise(
                mc, vae, rows, kinds, lam / d, how, scale, steps, lr, samples, seed, tolerance, patience,
                immutable, prediction_weight, latent_radius, restart, restart_std, start,
            )  # fmt: skip
            if best is None:
                best = run
            else:
                better = run["objective"] < best["objective"]
                for key in best:
                    best[key] = torch.where(better.reshape(-1, *[1] * (best[key].ndim - 1)), run[key], best[key])
        parts.append(best)
    joined = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    explanation = joined["explanation"]
    with torch.no_grad():
        fresh_before = mc.predict(x, samples=eval_samples, seed=seed, consistent=False)
        fresh_after = mc.predict(explanation, samples=eval_samples, seed=seed + 1, consistent=False)
    return ClueResult(
        x=x,
        explanation=explanation,
        z=joined["z"],
        before=_all_kinds(fresh_before),
        after=_all_kinds(fresh_after),
        prediction_before=_point(fresh_before),
        prediction_after=_point(fresh_after),
        distance=joined["distance"],
        objective=joined["objective"],
        steps=joined["steps"],
        converged=joined["converged"].bool(),
        lam=float(lam),
    )


def _decode(vae, z: Tensor, x: Tensor, immutable: Tensor | None) -> Tensor:
    conditioned = getattr(vae, "conditioned", False)  # a VAEAC view: decoding needs the row
    out = (vae.decode(z, hard=True, condition=x) if conditioned else vae.decode(z, hard=True)).reshape(x.shape)
    return torch.where(immutable, x, out) if immutable is not None else out


def _optimise(
    mc, vae, x, kinds, lam_d, how, scale, steps, lr, samples, seed, tolerance, patience,
    immutable, prediction_weight, latent_radius, restart, restart_std, offset,
) -> dict[str, Tensor]:  # fmt: skip
    n = x.shape[0]
    with torch.no_grad():
        z0, _ = vae.encode(x)
        start = z0.clone()
        if restart:
            generator = torch.Generator(device="cpu").manual_seed(seed * 7919 + restart * 104729 + offset)
            start = start + restart_std * torch.randn(start.shape, generator=generator).to(start)
        reference = mc.predict(x, samples=samples, seed=seed, consistent=True).mean if prediction_weight else None
    z = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    best_objective = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    best_z, best_distance = start.clone(), torch.zeros(n, dtype=x.dtype, device=x.device)
    steps_taken = torch.zeros(n, dtype=torch.long, device=x.device)
    stalled = torch.zeros(n, dtype=torch.long, device=x.device)
    vae_was_training = vae.training
    vae.eval()
    try:
        for step in range(steps + 1):
            rows = active.nonzero().squeeze(1)
            if len(rows) == 0:
                break
            decoded = _decode(vae, z[rows], x[rows], immutable)
            pred = mc.predict(decoded, samples=samples, seed=seed, grad=True, consistent=True)
            dist = _distance(decoded, x[rows], how, scale)
            objective = uncertainty_of(pred, {k.value: w for k, w in kinds.items()}) + lam_d * dist
            if reference is not None:
                objective = objective + prediction_weight * (pred.mean - reference[rows]).flatten(1).abs().sum(1)
            with torch.no_grad():
                value = objective.detach()
                improved = value < best_objective[rows] - tolerance
                stalled[rows] = torch.where(improved, torch.zeros_like(stalled[rows]), stalled[rows] + 1)
                better = value < best_objective[rows]
                best_objective[rows] = torch.where(better, value, best_objective[rows])
                best_z[rows] = torch.where(better[:, None], z[rows].detach(), best_z[rows])
                best_distance[rows] = torch.where(better, dist.detach(), best_distance[rows])
                if step == steps:
                    break
                done = stalled[rows] >= patience
                active[rows[done]] = False
                running = rows[~done]
            if len(running) == 0:
                break
            optimiser.zero_grad(set_to_none=True)
            objective.sum().backward()  # rows are independent: each gets its own gradient
            frozen = z.detach().clone()
            optimiser.step()
            with torch.no_grad():
                keep = torch.ones(n, dtype=torch.bool, device=x.device)
                keep[running] = False
                z[keep] = frozen[keep]  # stopped rows do not move (Adam's momentum would move them)
                if latent_radius is not None:
                    offset_z = z - z0
                    norm = offset_z.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    z.copy_(torch.where(norm > latent_radius, z0 + offset_z * (latent_radius / norm), z))
                steps_taken[running] += 1
    finally:
        vae.train(vae_was_training)
    with torch.no_grad():
        explanation = _decode(vae, best_z, x, immutable)
    return {
        "explanation": explanation.detach(),
        "z": best_z,
        "distance": best_distance,
        "objective": best_objective,
        "steps": steps_taken,
        "converged": (~active).to(torch.long),
    }


def sensitivity(
    mc,
    x: Tensor,
    step: float,
    *,
    uncertainty: str | Mapping[str, float] = "total",
    samples: int = 64,
    seed: int = 0,
    widths: Sequence[int] | None = None,
) -> Tensor:
    """The local-sensitivity baseline: one step of size ``step`` against the gradient of the
    uncertainty in input space, ``x - step * grad u(x) / |grad u(x)|_1 * d`` (the direction
    normalised so that ``step`` is the mean absolute change per column). With tabular
    ``widths`` (1: continuous, k: one-hot group), each group is snapped to the one-hot of its
    largest entry, so the result is a valid row."""
    if not step >= 0:
        raise expected("step", "a non-negative number", step)
    if not isinstance(x, Tensor):
        raise BayesdropError("Argument `x`: expected a tensor of rows (N, *in).")
    point = x.detach().clone().requires_grad_(True)
    u = uncertainty_of(mc.predict(point, samples=samples, seed=seed, grad=True, consistent=True), uncertainty)
    (grad,) = torch.autograd.grad(u.sum(), point)
    flat = grad.flatten(1)
    direction = flat / flat.abs().mean(1, keepdim=True).clamp_min(1e-12)
    moved = (x.flatten(1) - step * direction).detach()
    if widths is not None:  # the likelihood's hard decoding: each group's argmax as one-hot
        from ._vae import MixedLikelihood

        moved = MixedLikelihood(widths).mean(moved, hard=True).detach()
    return moved.reshape(x.shape)


class _Conditioned(torch.nn.Module):
    """A VAEAC seen as the latent space of CLUE with some features held: ``encode`` is the prior
    p(z | x_kept), ``decode`` fills the other features from z and keeps the held ones."""

    conditioned = True

    def __init__(self, vaeac, free: Tensor) -> None:
        super().__init__()
        self.vaeac, self.free = vaeac, free.to(torch.float32)  # (F,) 1 = may change

    def _mask(self, x: Tensor) -> Tensor:
        return self.free.to(x.dtype).expand(x.shape[0], -1)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.vaeac.prior_of(x, self._mask(x))

    def decode(self, z: Tensor, hard: bool = False, condition: Tensor | None = None) -> Tensor:
        if condition is None:
            raise BayesdropError("A conditional CLUE decodes with its rows (internal: condition=None).")
        mask = self._mask(condition)
        params = self.vaeac.decode_params(z, condition, mask)
        filled = self.vaeac.likelihood.mean(params, hard=hard)
        columns = self.vaeac.likelihood.columns_of(mask)
        return condition * (1 - columns) + filled * columns


def conditional_clue(mc, vaeac, x: Tensor, keep: Sequence[int], **options) -> ClueResult:
    """CLUE through a :class:`bayesdrop.explain.VAEAC` that holds the features ``keep`` (indices
    of features, not columns) at their values: the search runs in the VAEAC's latent space
    conditioned on them, and only the other features are generated. ``options`` as for
    :func:`clue` (``immutable`` is implied by ``keep``)."""
    features = vaeac.features
    bad = [k for k in keep if not 0 <= int(k) < features]
    if bad:
        raise expected("keep", f"feature indices in [0, {features})", bad)
    free = torch.ones(features)
    free[list(keep)] = 0.0
    return clue(mc, _Conditioned(vaeac, free), x, **options)


@dataclass
class ClueSet:
    """``count`` diverse explanations per input.

    Attributes:
        explanations: ``(N, count, *in)``; z: ``(N, count, L)``.
        after: uncertainty of each explanation (fresh masks), ``{"total", ...}`` -> ``(N, count)``.
        before: uncertainty of the inputs ``(N,)`` per kind.
        distance: ``(N, count)`` to the input; spread: ``(N,)`` mean pairwise latent distance.
    """

    explanations: Tensor
    z: Tensor
    before: dict[str, Tensor]
    after: dict[str, Tensor]
    distance: Tensor
    spread: Tensor


def clue_set(
    mc,
    vae,
    x: Tensor,
    count: int = 5,
    *,
    diversity: float = 1.0,
    latent_radius: float | None = 2.0,
    uncertainty: str | Mapping[str, float] = "total",
    lam: float = 1.0,
    steps: int = 50,
    lr: float = 0.1,
    samples: int = 64,
    eval_samples: int = 100,
    init_std: float = 0.5,
    seed: int = 0,
) -> ClueSet:
    """A set of ``count`` explanations per row in the spirit of delta-CLUE (Ley et al. 2022):
    each minimises the CLUE objective inside a latent ball of ``latent_radius`` around the
    encoder's mean, minus ``diversity`` times the mean latent distance to the row's other
    explanations. Starts are the mean plus seeded N(0, ``init_std``^2) noise; all ``steps`` are
    taken (the copies are coupled, so rows do not stop early)."""
    kinds = _weights(uncertainty)
    for name, value in (("count", count), ("steps", steps), ("samples", samples)):
        _check_positive(name, value, integer=True)
    if count < 2:
        raise expected("count", "an integer >= 2 (a set)", count)
    if not diversity >= 0:
        raise expected("diversity", "a non-negative number", diversity)
    n, d = x.shape[0], x[0].numel()
    was_training = vae.training
    vae.eval()
    try:
        with torch.no_grad():
            z0 = vae.encode(x)[0]
            generator = torch.Generator().manual_seed(seed)
            start = z0[:, None, :] + init_std * torch.randn((n, count, z0.shape[1]), generator=generator).to(z0)
        z = start.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([z], lr=lr)
        repeated = x.repeat_interleave(count, 0)
        pair = ~torch.eye(count, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            decoded = _decode(vae, z.reshape(n * count, -1), repeated, None)
            pred = mc.predict(decoded, samples=samples, seed=seed, grad=True, consistent=True)
            u = uncertainty_of(pred, {k.value: w for k, w in kinds.items()})
            dist = _distance(decoded, repeated, Distance.L1, None)
            gaps = (z[:, :, None, :] - z[:, None, :, :]).pow(2).sum(-1).add(1e-12).sqrt()  # (N, k, k)
            spread = (gaps * pair).sum((1, 2)) / (count * (count - 1))
            objective = (u + lam / d * dist).sum() - diversity * spread.sum()
            optimiser.zero_grad(set_to_none=True)
            objective.backward()
            optimiser.step()
            if latent_radius is not None:
                with torch.no_grad():
                    offset = z - z0[:, None, :]
                    norm = offset.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                    z.copy_(torch.where(norm > latent_radius, z0[:, None, :] + offset * (latent_radius / norm), z))
        with torch.no_grad():
            flat = z.reshape(n * count, -1)
            explanations = _decode(vae, flat, repeated, None)
            before = mc.predict(x, samples=eval_samples, seed=seed, consistent=False)
            after = mc.predict(explanations, samples=eval_samples, seed=seed + 1, consistent=False)
            gaps = (z[:, :, None, :] - z[:, None, :, :]).pow(2).sum(-1).sqrt()
            spread = (gaps * pair).sum((1, 2)) / (count * (count - 1))
    finally:
        vae.train(was_training)
    return ClueSet(
        explanations=explanations.reshape(n, count, *x.shape[1:]),
        z=z.detach(),
        before=_all_kinds(before),
        after={k: v.reshape(n, count) for k, v in _all_kinds(after).items()},
        distance=_distance(explanations, repeated, Distance.L1, None).reshape(n, count),
        spread=spread,
    )
