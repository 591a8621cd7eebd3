"""Model complexity: parameter count and FLOPs (torch's own flop counter), and MC cost."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._errors import expected

__all__ = ["count_parameters", "count_flops", "mc_flops"]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (shared parameters counted once).

    >>> count_parameters(torch.nn.Linear(10, 5))
    55
    """
    if not isinstance(model, nn.Module):
        raise expected("model", "a torch.nn.Module", type(model).__name__)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """FLOPs of one forward pass ``model(*inputs, **kwargs)``, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2 FLOPs; only the
    operators torch knows are counted: matmuls and convolutions, not activations).

    The forward runs under ``torch.no_grad()``; the model's train/eval mode is left as is.

    >>> count_flops(torch.nn.Linear(10, 5), torch.zeros(3, 10))
    300
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(model, nn.Module):
        raise expected("model", "a torch.nn.Module", type(model).__name__)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs, **kwargs)
    return int(counter.get_total_flops())


def mc_flops(flops_per_forward: int, n_samples: int) -> int:
    """FLOPs of naive MC prediction: ``n_samples`` full forward passes.

    An upper bound for the sampling engine, which computes the deterministic head of the
    network once and repeats only the stochastic tail.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise expected("n_samples", "a positive integer", n_samples)
    if isinstance(flops_per_forward, bool) or not isinstance(flops_per_forward, int):
        raise expected("flops_per_forward", "a non-negative integer", flops_per_forward)
    if flops_per_forward < 0:
        raise expected("flops_per_forward", "a non-negative integer", flops_per_forward)
    return flops_per_forward * n_samples
