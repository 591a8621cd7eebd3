"""U-FIDO (the CLUE paper's uncertainty variant of FIDO, Chang et al. 2019): per input, learn
which features to hide so that, in-filled by a VAEAC from the rest, the model is confident."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .._errors import expected
from ._clue import uncertainty_of

__all__ = ["ufido"]


def ufido(
    mc,
    vaeac,
    x: Tensor,
    *,
    l1: float = 1.0,
    uncertainty: str | Mapping[str, float] = "total",
    steps: int = 50,
    lr: float = 0.1,
    samples: int = 64,
    temperature: float = 0.3,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Explanations ``(N, D)`` and hidden-feature masks ``(N, F)`` (bool) of the rows ``x``;
    the hiding logits start at 0 (every feature undecided).

    Per row and feature a logit a gives the probability sigmoid(a) of hiding it. Each Adam step
    draws relaxed masks (binary concrete at ``temperature``, seeded), in-fills the hidden
    features with the VAEAC's mean given the others, and lowers the model's uncertainty plus
    ``l1`` times the mean hiding probability. The explanation hides the features with
    sigmoid(a) > 0.5, in-filled (categories one-hot). MC samples use fixed consistent masks.
    """
    if not l1 >= 0:
        raise expected("l1", "a non-negative number", l1)
    for name, value in (("steps", steps), ("samples", samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise expected(name, "a positive integer", value)
    if not temperature > 0 or not lr > 0:
        raise expected("temperature / lr", "positive numbers", (temperature, lr))
    features = vaeac.features
    generator = torch.Generator().manual_seed(seed)
    logits = torch.zeros((x.shape[0], features), dtype=x.dtype, requires_grad=True)  # start undecided: p = 0.5
    optimiser = torch.optim.Adam([logits], lr=lr)
    was_training = vaeac.training
    vaeac.eval()
    try:
        for _ in range(steps):
            u = torch.rand(logits.shape, generator=generator, dtype=x.dtype).clamp(1e-6, 1 - 1e-6)
            relaxed = torch.sigmoid((logits + u.log() - (-u).log1p()) / temperature)
            filled = vaeac.infill(x, relaxed, generator=torch.Generator().manual_seed(seed + 1))
            pred = mc.predict(filled, samples=samples, seed=seed, grad=True, consistent=True)
            objective = uncertainty_of(pred, uncertainty) + l1 * torch.sigmoid(logits).mean(1)
            optimiser.zero_grad(set_to_none=True)
            objective.sum().backward()
            optimiser.step()
        with torch.no_grad():
            hidden = torch.sigmoid(logits) > 0.5
            explanation = vaeac.infill(
                x, hidden.to(x.dtype), hard=True, generator=torch.Generator().manual_seed(seed + 1)
            )
    finally:
        vaeac.train(was_training)
    return explanation.detach(), hidden
