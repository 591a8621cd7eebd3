"""How a model's output is read: the one place that interprets outputs for the wrapper, the
sampling engine and training.

A model may return a tensor, a tuple, a dict, or a Hugging Face ``ModelOutput`` (a dict with
attributes). ``select`` picks what MC sampling reduces; ``log_probs`` and ``mean_variance`` read
it for classification and regression.

The automatic choice (``selector=None``):

- a tensor is used as it is;
- a mapping (dict, ``ModelOutput``) gives its ``"logits"`` entry when it has one (every Hugging
  Face classifier and regressor head), else its only tensor entry;
- a tuple or list gives its only element, or, for a regression ``(mean, variance)`` head, the
  pair itself;
- anything else is ambiguous and raises an error that lists what there is to choose from.

An explicit selector is a key or attribute name (``"logits"``, ``"start_logits"``), a position
(``0``), or a callable ``output -> tensor`` (or ``-> (mean, variance)`` pair).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._errors import BayesdropError, expected

__all__ = ["Output", "Selector", "select", "log_probs", "mean_variance", "PAIR_OUTPUTS"]

Selector = str | int | Callable[[Any], Any] | None


class Output(str, Enum):
    """What the selected output means."""

    LOGITS = "logits"  #: classification: unnormalised class scores (B, C)
    PROBS = "probs"  #: classification: probabilities (B, C)
    LOG_PROBS = "log_probs"  #: classification: log-probabilities (B, C)
    MEAN = "mean"  #: regression: point prediction (B, *out)
    MEAN_VAR = "mean_var"  #: regression: (mean, variance) pair
    MEAN_LOGVAR = "mean_logvar"  #: regression: (mean, log variance) pair


CLASSIFICATION_OUTPUTS = (Output.LOGITS, Output.PROBS, Output.LOG_PROBS)
REGRESSION_OUTPUTS = (Output.MEAN, Output.MEAN_VAR, Output.MEAN_LOGVAR)
PAIR_OUTPUTS = (Output.MEAN_VAR, Output.MEAN_LOGVAR)


def _describe(out: Any) -> str:
    if isinstance(out, Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, Mapping):
        return f"{type(out).__name__} with keys {list(out.keys())}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)} elements"
    return type(out).__name__


def _tensor_entries(out: Mapping) -> list[str]:
    return [k for k, v in out.items() if isinstance(v, Tensor)]


def select(out: Any, selector: Selector = None, output: Output | str = Output.LOGITS) -> Any:
    """The part of a model's output that MC sampling reduces.

    >>> select({"logits": torch.zeros(2, 3), "hidden": torch.zeros(2, 8)}).shape
    torch.Size([2, 3])
    >>> select((torch.zeros(2, 3), torch.zeros(2, 8)), 0).shape
    torch.Size([2, 3])

    Args:
        out: what the model returned.
        selector: None (automatic, see the module docstring), a key or attribute name, a
            position, or a callable.
        output: what the selected value means; a ``(mean, variance)`` pair is kept whole.

    Returns:
        A tensor, or a ``(mean, variance)`` pair for ``mean_var`` / ``mean_logvar``.
    """
    output = Output(output)
    if selector is None:
        return _auto(out, output)
    if callable(selector) and not isinstance(selector, (str, int)):
        return selector(out)
    if isinstance(selector, str):
        if isinstance(out, Mapping):
            if selector in out and out[selector] is not None:
                return out[selector]
        elif hasattr(out, selector):
            return getattr(out, selector)
        raise BayesdropError(
            f"Expected argument `select` to name an entry of the model's output, but got {selector!r}; "
            f"the model returned {_describe(out)}."
        )
    if isinstance(selector, int) and not isinstance(selector, bool):
        if isinstance(out, (tuple, list)) and -len(out) <= selector < len(out):
            return out[selector]
        if isinstance(out, Mapping):
            values = list(out.values())
            if -len(values) <= selector < len(values):
                return values[selector]
        raise BayesdropError(
            f"Expected argument `select` to be a valid position in the model's output, but got {selector}; "
            f"the model returned {_describe(out)}."
        )
    raise expected("select", "None, a key or attribute name (str), a position (int) or a callable", selector)


def _auto(out: Any, output: Output) -> Any:
    if isinstance(out, Tensor):
        return out
    pair = output in PAIR_OUTPUTS
    if isinstance(out, Mapping):
        if out.get("logits") is not None:
            return out["logits"]
        entries = _tensor_entries(out)
        if len(entries) == 1:
            return out[entries[0]]
        raise BayesdropError(
            f"The model returned {_describe(out)}, without a 'logits' entry: which one should be sampled "
            "is ambiguous. Pass `select` to bd.wrap: a key (e.g. select='start_logits') or a callable."
        )
    if isinstance(out, (tuple, list)):
        if pair and len(out) == 2 and all(isinstance(v, Tensor) for v in out):
            return tuple(out)
        if len(out) == 1:
            return _auto(out[0], output)
        raise BayesdropError(
            f"The model returned {_describe(out)}: which one should be sampled is ambiguous. Pass `select` "
            "to bd.wrap: a position (e.g. select=0) or a callable"
            + ("; or output='mean_var' / 'mean_logvar' for a (mean, variance) pair." if not pair else ".")
        )
    raise BayesdropError(
        f"The model returned {_describe(out)}, which bayesdrop cannot read. Pass `select` to bd.wrap: a "
        "callable that returns the tensor to sample."
    )


def log_probs(value: Any, output: Output | str) -> Tensor:
    """``(..., C)`` log-probabilities from selected classification scores of kind ``output``."""
    output = Output(output)
    if not isinstance(value, Tensor):
        raise BayesdropError(
            f"Expected the model's selected output to be a (B, C) tensor of class scores for task='classification', "
            f"but got {_describe(value)}. Pass `select` to bd.wrap to choose the tensor."
        )
    if output is Output.LOGITS:
        return F.log_softmax(value, dim=-1)
    if output is Output.PROBS:
        return value.clamp_min(torch.finfo(value.dtype).tiny).log()
    if output is Output.LOG_PROBS:
        return value
    raise expected("output", "'logits', 'probs' or 'log_probs' for classification", output.value)


def mean_variance(value: Any, output: Output | str) -> tuple[Tensor, Tensor | None]:
    """``(mean, variance)`` of a selected regression output; variance None for ``output='mean'``."""
    output = Output(output)
    if output is Output.MEAN:
        if not isinstance(value, Tensor):
            raise BayesdropError(
                f"Expected the model to return one tensor for output='mean', but got {_describe(value)}; use "
                "output='mean_var' or 'mean_logvar' for a (mean, variance) head, or `select` to choose."
            )
        return value, None
    if output not in PAIR_OUTPUTS:
        raise expected("output", "'mean', 'mean_var' or 'mean_logvar' for regression", output.value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, Tensor) for v in value)):
        raise BayesdropError(
            f"Expected the model to return a (mean, {output.value[5:]}) pair of tensors for "
            f"output={output.value!r}, but got {_describe(value)}."
        )
    mean, second = value
    return mean, (second.exp() if output is Output.MEAN_LOGVAR else second)
