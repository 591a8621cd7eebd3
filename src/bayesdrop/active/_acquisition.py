"""Acquisition functions: single-point scores, BatchBALD, EPIG, stochastic batch acquisition."""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import Tensor

from .. import uncertainty
from .._errors import BayesdropError, expected
from ..prediction import Prediction

_SCORE_CHUNK_BYTES = 64 * 2**20  # working memory of one block of candidates in batchbald / epig


class Heuristic(str, Enum):
    """Acquisition heuristics by name (CLI and configs)."""

    BALD = "bald"
    MAX_ENTROPY = "max_entropy"
    VARIATION_RATIO = "variation_ratio"
    MEAN_STD = "mean_std"
    MARGIN = "margin"
    LEAST_CONFIDENCE = "least_confidence"
    BATCHBALD = "batchbald"
    EPIG = "epig"
    RANDOM = "random"


def _classification(probs: Tensor | Prediction, name: str) -> Tensor | Prediction:
    if isinstance(probs, Prediction) and probs.task != "classification":
        raise expected(name, "a classification Prediction", f"a {probs.task} one")
    return probs


def _streamed(probs: Tensor | Prediction) -> Prediction | None:
    """The Prediction when it kept no samples (its running sums give the scores), else None."""
    if isinstance(probs, Prediction) and probs.kept_samples is None:
        return _classification(probs, "probs")
    return None


def _samples(probs: Tensor | Prediction, name: str = "probs") -> Tensor:
    """``(N, K, C)`` float64 probabilities, checked."""
    if isinstance(_classification(probs, name), Prediction):
        probs = probs.samples
    if not isinstance(probs, Tensor) or probs.dim() != 3 or probs.shape[0] == 0 or probs.shape[1] == 0:
        shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
        raise expected(name, "a non-empty (N, K, C) tensor of per-sample class probabilities", shape)
    probs = probs.detach().double()
    sums = probs.sum(-1)
    if bool((probs < 0).any()) or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise expected(name, "probabilities (non-negative, summing to 1 over the last dim)", "other values")
    return probs


def _log(probs: Tensor) -> Tensor:
    return torch.log(probs)  # log 0 = -inf; the entropies below treat 0 log 0 as 0


def _mean(probs: Tensor | Prediction) -> Tensor:
    """``(N, C)`` predictive probabilities, from a Prediction's running mean when it has no samples."""
    streamed = _streamed(probs)
    return streamed.mean.double() if streamed is not None else _samples(probs).mean(1)


def bald(probs: Tensor | Prediction) -> Tensor:
    """Mutual information between the label and the weights (Houlsby et al. 2011): ``(N,)``."""
    streamed = _streamed(probs)
    if streamed is not None:
        return streamed.epistemic.double()
    return uncertainty.mutual_information(_log(_samples(probs)))


def max_entropy(probs: Tensor | Prediction) -> Tensor:
    """Predictive entropy H[E_k p_k] (Shannon 1948): ``(N,)``."""
    streamed = _streamed(probs)
    if streamed is not None:
        return streamed.total.double()
    return uncertainty.predictive_entropy(_log(_samples(probs)))


def variation_ratio(probs: Tensor | Prediction) -> Tensor:
    """1 - (samples voting for the modal class) / K (Freeman 1965, as in Gal et al. 2017): ``(N,)``."""
    streamed = _streamed(probs)
    if streamed is not None:
        return streamed.variation_ratio.double()
    return uncertainty.variation_ratio(_log(_samples(probs)))


def mean_std(probs: Tensor | Prediction) -> Tensor:
    """Mean over classes of the standard deviation of p_k(c) over samples (Kampffmeyer et al.
    2016; divisor K): ``(N,)``."""
    streamed = _streamed(probs)
    if streamed is not None:
        return streamed.variance.double().clamp_min(0).sqrt().mean(-1)
    return _samples(probs).var(1, correction=0).sqrt().mean(-1)


def margin(probs: Tensor | Prediction) -> Tensor:
    """1 - (top probability - second) of the predictive distribution: ``(N,)``."""
    mean = _mean(probs)
    if mean.shape[-1] < 2:
        raise expected("probs", "at least 2 classes for a margin", mean.shape[-1])
    top = mean.topk(2, dim=-1).values
    return 1 - (top[:, 0] - top[:, 1])


def least_confidence(probs: Tensor | Prediction) -> Tensor:
    """1 - max_c E_k p_k(c): ``(N,)``."""
    return 1 - _mean(probs).max(-1).values


def random_scores(n: int, seed: int = 0) -> Tensor:
    """``(n,)`` uniform scores from a private seeded generator: random acquisition."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise expected("n", "an integer >= 1", n)
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def score(heuristic: Heuristic | str, probs: Tensor | Prediction, seed: int = 0) -> Tensor:
    """The ``(N,)`` scores of a single-point heuristic by name."""
    heuristic = Heuristic(heuristic)
    functions = {
        Heuristic.BALD: bald,
        Heuristic.MAX_ENTROPY: max_entropy,
        Heuristic.VARIATION_RATIO: variation_ratio,
        Heuristic.MEAN_STD: mean_std,
        Heuristic.MARGIN: margin,
        Heuristic.LEAST_CONFIDENCE: least_confidence,
    }
    if heuristic is Heuristic.RANDOM:
        size = probs.mean.shape[0] if isinstance(probs, Prediction) else _samples(probs).shape[0]
        return random_scores(size, seed)
    if heuristic not in functions:
        raise expected("heuristic", f"one of {[h.value for h in functions]} or 'random' (a score per point)", heuristic)
    return functions[heuristic](probs)


def _check_count(n: int, pool: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= pool:
        raise expected("n", f"an integer in [1, {pool}] (the pool size)", n)


def _joint_entropy_with(
    log_joint: Tensor,
    weights: Tensor,
    log_denominator: Tensor,
    probs: Tensor,
    candidates: Tensor,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Estimated H(y_chosen, y_x) for each candidate x.

    ``log_joint`` ``(K, M)``: log prod_j p_k(y_j = a_j) for M label configurations ``a`` of the
    chosen points; ``weights`` ``(M,)`` and ``log_denominator`` ``(M,)``: 1 and 0 when the
    configurations are all of them (exact), 1/M and log P(a) when they were sampled from P.
    Works in blocks of candidates; the per-configuration scale keeps the products in range.
    ``dtype``: of the per-candidate products (float32 where the estimate's own Monte-Carlo
    error is far above float32 rounding); the sums are float64.
    """
    scale = log_joint.max(0).values  # (M,)
    scaled = (log_joint - scale).exp()  # (K, M) in [0, 1]
    k, m = scaled.shape
    c = probs.shape[-1]
    # H = -sum_a w_a r_a sum_c P(a, c) log P(a, c) with P = exp(scale) J and r = 1 / denominator:
    # sum_c J log J per configuration, plus scale_a sum_c J(a, c) = scale_a mean_k scaled[k, a]
    # (the same for every candidate, since sum_c p = 1).
    factor = weights * (scale - log_denominator).exp()  # (M,)
    constant = float((factor * scale * scaled.mean(0)).sum())
    block = max(1, int(_SCORE_CHUNK_BYTES // (8 * m * c * 2)))
    # one (M, K) @ (K, b C) product per block, then J log J in place and the weighted sum over
    # configurations as a vector-matrix product: no permuted copies of the (M, b, C) block
    per_model = (scaled / k).T.contiguous().to(dtype)  # (M, K)
    factor_in = factor.to(dtype)
    tiny = torch.finfo(dtype).tiny  # J = 0 contributes 0 log 0 = 0
    out = []
    for start in range(0, len(candidates), block):
        p = probs[candidates[start : start + block]].to(dtype)  # (b, K, C)
        b = p.shape[0]
        joint = per_model @ p.permute(1, 0, 2).reshape(k, b * c)  # (M, b C): P(a, c) / exp(scale)
        logs = joint.clamp_min(tiny).log_()
        per_class = factor_in @ joint.mul_(logs)  # (b C,) sum_a w_a r_a J log J
        out.append(-per_class.view(b, c).sum(1, dtype=torch.float64) - constant)
    return torch.cat(out)


def batchbald(
    probs: Tensor | Prediction, n: int, samples: int = 10_000, seed: int = 0, exact_limit: int = 10_000
) -> Tensor:
    """Greedy BatchBALD (Kirsch, van Amersfoort & Gal 2019): the ``n`` pool indices, in order.

    Each step adds the point maximising H(y_chosen, y_x) - sum E_k H[p_k(y)] over the batch.
    The joint entropy is exact while the chosen points have at most ``exact_limit`` label
    configurations (C^(i-1)); beyond, it is estimated from ``samples`` configurations drawn from
    the joint (one model per configuration, labels from it), seeded. With ``n=1`` it is the BALD
    argmax. The samples must come from ``predict(..., consistent=True)``.
    """
    probs = _samples(probs)
    pool, k, c = probs.shape
    _check_count(n, pool)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise expected("samples", "an integer >= 1 (sampled label configurations)", samples)
    generator = torch.Generator().manual_seed(seed)
    conditional = uncertainty.expected_entropy(_log(probs))  # (N,) E_k H[p_k(y_x)]
    chosen: list[int] = []
    log_joint = torch.zeros(k, 1, dtype=torch.float64)  # one empty configuration
    sampled_labels: Tensor | None = None  # (M, i) labels of sampled configurations
    model_of: Tensor | None = None
    available = torch.ones(pool, dtype=torch.bool)
    conditional_sum = 0.0
    for _ in range(n):
        candidates = available.nonzero().squeeze(1)
        exact = sampled_labels is None
        if exact:
            m = log_joint.shape[1]
            weights, denominator = torch.ones(m, dtype=torch.float64), torch.zeros(m, dtype=torch.float64)
        else:
            m = log_joint.shape[1]
            log_p_config = torch.logsumexp(log_joint, 0) - math.log(k)
            weights, denominator = torch.full((m,), 1.0 / m, dtype=torch.float64), log_p_config
        joint = _joint_entropy_with(
            log_joint, weights, denominator, probs, candidates, torch.float64 if exact else torch.float32
        )
        gains = joint - conditional_sum - conditional[candidates]
        best = int(candidates[int(gains.argmax())])
        chosen.append(best)
        available[best] = False
        conditional_sum += float(conditional[best])
        log_p_best = _log(probs[best])  # (K, C)
        if exact and log_joint.shape[1] * c <= exact_limit:
            log_joint = (log_joint[:, :, None] + log_p_best[:, None, :]).reshape(k, -1)
            continue
        if exact:  # switch to sampled configurations of the chosen points
            model_of = torch.arange(samples) % k
            sampled_labels = torch.empty(samples, 0, dtype=torch.long)
            for index in chosen[:-1]:
                labels = torch.multinomial(probs[index][model_of], 1, generator=generator)
                sampled_labels = torch.cat([sampled_labels, labels], 1)
            log_joint = torch.zeros(k, samples, dtype=torch.float64)
            for j, index in enumerate(chosen[:-1]):
                log_joint = log_joint + _log(probs[index])[:, sampled_labels[:, j]]
        labels = torch.multinomial(probs[best][model_of], 1, generator=generator)
        sampled_labels = torch.cat([sampled_labels, labels], 1)
        log_joint = log_joint + log_p_best[:, labels[:, 0]]
    return torch.tensor(chosen, dtype=torch.long)


def epig(pool_probs: Tensor | Prediction, target_probs: Tensor | Prediction) -> Tensor:
    """Expected predictive information gain (Bickford Smith, Kirsch, Farquhar, Gal, Foster and
    Rainforth 2023): ``(N,)`` mean over target inputs x* of I(y; y* | x, x*), from the same K
    sub-networks on pool ``(N, K, C)`` and targets ``(M, K, C)`` (draw both with
    ``consistent=True``; the targets are inputs of interest, e.g. a sample of the pool)."""
    pool = _samples(pool_probs, "pool_probs")
    target = _samples(target_probs, "target_probs")
    if pool.shape[1] != target.shape[1]:
        raise expected("target_probs", f"the pool's {pool.shape[1]} samples (same sub-networks)", target.shape[1])
    n, k, c = pool.shape
    m, _, c_star = target.shape
    target_mean = target.mean(1)  # (M, C*)
    block = max(1, int(_SCORE_CHUNK_BYTES // (8 * m * c * c_star * 2)))
    out = []
    for start in range(0, n, block):
        p = pool[start : start + block]  # (b, K, C)
        joint = torch.einsum("bkc,mkd->bmcd", p, target) / k  # p(y, y*)
        independent = p.mean(1)[:, None, :, None] * target_mean[None, :, None, :]
        information = (torch.special.xlogy(joint, joint) - torch.special.xlogy(joint, independent)).sum((2, 3))
        out.append(information.clamp_min(0).mean(1))
    return torch.cat(out)


def stochastic_batch(scores: Tensor, n: int, mode: str = "power", temperature: float = 1.0, seed: int = 0) -> Tensor:
    """Stochastic batch acquisition (Kirsch et al. 2023): ``n`` indices drawn without replacement
    with probabilities proportional to ``scores ** (1/temperature)`` (``"power"``),
    ``exp(scores / temperature)`` (``"softmax"``) or ``rank ** (-1/temperature)``
    (``"softrank"``), by seeded Gumbel-top-k."""
    if not isinstance(scores, Tensor) or scores.dim() != 1:
        raise expected("scores", "a (N,) tensor", getattr(scores, "shape", type(scores).__name__))
    _check_count(n, scores.shape[0])
    if not temperature > 0:
        raise expected("temperature", "a positive float", temperature)
    scores = scores.detach().double()
    if mode == "power":
        log_weight = torch.log(scores.clamp_min(0)) / temperature
    elif mode == "softmax":
        log_weight = scores / temperature
    elif mode == "softrank":
        rank = torch.empty_like(scores)
        rank[scores.argsort(descending=True)] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
        log_weight = -torch.log(rank) / temperature
    else:
        raise expected("mode", "'power', 'softmax' or 'softrank'", mode)
    uniform = torch.rand(len(scores), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-300, 1 - 1e-16)))
    keys = log_weight + gumbel
    if bool(torch.isnan(keys).any()):
        raise BayesdropError("stochastic_batch: scores gave NaN weights (negative scores with mode='power'?)")
    return keys.topk(n).indices
