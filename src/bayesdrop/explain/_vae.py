"""Variational auto-encoders for CLUE: the latent space explanations are searched in.

A :class:`VAE` is an encoder ``x -> (mean, log-variance)`` of a diagonal Gaussian q(z | x), a
decoder ``z -> parameters`` and a likelihood p(x | z) read from those parameters:

- :class:`MixedLikelihood`: tabular rows, Gaussian continuous columns (one learned log-variance
  per column) and categorical groups (a categorical over each one-hot group); decoded as the
  Gaussian means and the group's probabilities, or hard one-hot with a straight-through gradient.
- :class:`BernoulliLikelihood`: images with pixels in [0, 1] (MNIST), decoded as probabilities.

:func:`tabular_vae` (residual MLPs) and :func:`image_vae` (convolutional, 28x28) build them;
train with ``training.fit(vae, data, loss=elbo_loss)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import expected

__all__ = [
    "VAE",
    "MixedLikelihood",
    "BernoulliLikelihood",
    "tabular_vae",
    "image_vae",
    "elbo_loss",
]

_LOG_2PI = math.log(2 * math.pi)


class MixedLikelihood(nn.Module):
    """p(x | params) for rows of continuous columns and one-hot categorical groups.

    Args:
        widths: columns per feature in order: 1 for a continuous feature, k >= 2 for a
            categorical one with k one-hot columns.
        heteroscedastic: the parameters carry a log-variance per continuous column and row
            (after the D mean / logit columns) instead of one learned log-variance per column.
    """

    def __init__(self, widths: Sequence[int], heteroscedastic: bool = False) -> None:
        super().__init__()
        if not widths or any(int(w) < 1 for w in widths):
            raise expected("widths", "a non-empty list of column counts >= 1", list(widths))
        self.widths = [int(w) for w in widths]
        self.dim = sum(self.widths)
        starts = [sum(self.widths[:i]) for i in range(len(self.widths))]
        self.groups = [(s, w) for s, w in zip(starts, self.widths, strict=True) if w > 1]
        continuous = [s for s, w in zip(starts, self.widths, strict=True) if w == 1]
        self.register_buffer("continuous", torch.tensor(continuous, dtype=torch.long), persistent=False)
        self.heteroscedastic = bool(heteroscedastic)
        self.log_var = nn.Parameter(torch.zeros(len(continuous)))  # unused when heteroscedastic

    def params_dim(self) -> int:
        """Columns of the parameters a decoder must output."""
        return self.dim + (len(self.continuous) if self.heteroscedastic else 0)

    def continuous_log_var(self, params: Tensor) -> Tensor:
        """``(B, n_continuous)`` (or ``(n_continuous,)``) log-variances of the continuous columns."""
        raw = params[:, self.dim :] if self.heteroscedastic else self.log_var
        return raw.clamp(-7.0, 5.0)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """``(B,)`` log p(x | params) for rows ``x`` ``(B, D)`` (one-hot groups)."""
        return self.feature_log_prob(x, params).sum(1)

    def feature_log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """``(B, F)`` log-likelihood of each feature (continuous column or categorical group),
        in feature order."""
        columns = []
        if len(self.continuous):
            mean, target = params[:, self.continuous], x[:, self.continuous]
            log_var = self.continuous_log_var(params)
            columns.append(-0.5 * (_LOG_2PI + log_var + (target - mean) ** 2 / log_var.exp()))
        for start, width in self.groups:
            logits = params[:, start : start + width]
            columns.append((F.log_softmax(logits, 1) * x[:, start : start + width]).sum(1, keepdim=True))
        values = torch.cat(columns, 1)  # continuous first, then groups: back to feature order
        return values[:, self._feature_order()]

    def _feature_order(self) -> list[int]:
        if not hasattr(self, "_order"):
            starts = [sum(self.widths[:i]) for i in range(len(self.widths))]
            kinds = [(s, w) for s, w in zip(starts, self.widths, strict=True)]
            n_cont = sum(1 for _, w in kinds if w == 1)
            cont_i, group_i, order = 0, 0, []
            for _, w in kinds:
                if w == 1:
                    order.append(cont_i)
                    cont_i += 1
                else:
                    order.append(n_cont + group_i)
                    group_i += 1
            self._order = order
        return self._order

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Rows ``(B, D)`` drawn from p(x | params): Gaussian columns, one-hot categories."""
        out = params[:, : self.dim].clone()
        noise = torch.randn(out.shape, generator=generator, dtype=params.dtype, device=params.device)
        if len(self.continuous):
            std = (0.5 * self.continuous_log_var(params)).exp().to(params.dtype)
            out[:, self.continuous] = params[:, self.continuous] + std * noise[:, self.continuous]
        for start, width in self.groups:
            probs = F.softmax(params[:, start : start + width], 1)
            index = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            out[:, start : start + width] = F.one_hot(index, width).to(params.dtype)
        return out

    def columns_of(self, features: Tensor) -> Tensor:
        """Feature-level values ``(B, F)`` repeated over each feature's columns ``(B, D)``."""
        return features.repeat_interleave(torch.tensor(self.widths, device=features.device), dim=1)

    def mean(self, params: Tensor, hard: bool = False) -> Tensor:
        """Decoded rows ``(B, D)``: Gaussian means and group probabilities, or (``hard``) a
        one-hot of each group's most likely category with the probabilities' gradient."""
        out = params[:, : self.dim].clone()
        for start, width in self.groups:
            probs = F.softmax(params[:, start : start + width], 1)
            if hard:
                one_hot = F.one_hot(probs.argmax(1), width).to(probs.dtype)
                probs = one_hot + (probs - probs.detach())  # straight-through: exact one-hot values
            out = torch.cat([out[:, :start], probs, out[:, start + width :]], 1)
        return out


class BernoulliLikelihood(nn.Module):
    """p(x | logits): independent Bernoulli pixels, x in [0, 1] (the continuous relaxation of
    binary pixels usual for MNIST)."""

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(params, x, reduction="none").flatten(1).sum(1)

    def mean(self, params: Tensor, hard: bool = False) -> Tensor:
        """Pixel probabilities (``hard`` is for categorical groups; images stay grey-level)."""
        return torch.sigmoid(params)


class VAE(nn.Module):
    """``encoder(x) -> (B, 2 L)`` (mean and log-variance of q(z | x)), ``decoder(z) -> params``,
    ``likelihood`` p(x | params); prior N(0, I) on the ``latent``-dimensional z."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: nn.Module, latent: int) -> None:
        super().__init__()
        self.encoder, self.decoder, self.likelihood, self.latent = encoder, decoder, likelihood, int(latent)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance ``(B, L)`` each of q(z | x)."""
        h = self.encoder(x)
        mean, log_var = h[:, : self.latent], h[:, self.latent :]
        return mean, log_var.clamp(-12.0, 8.0)

    def decode(self, z: Tensor, hard: bool = False) -> Tensor:
        """The decoded input of latent codes ``z`` ``(B, L)`` (see the likelihood's ``mean``).

        ``hard``: categorical groups as one-hot (straight-through gradient)."""
        return self.likelihood.mean(self.decoder(z), hard=hard)

    def elbo(self, x: Tensor) -> Tensor:
        """``(B,)`` evidence lower bound, one reparameterised sample of z."""
        mean, log_var = self.encode(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        kl = 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var).sum(1)
        return self.likelihood.log_prob(x, self.decoder(z)) - kl

    @torch.no_grad()
    def log_prob(self, x: Tensor, samples: int = 100, generator: torch.Generator | None = None) -> Tensor:
        """``(B,)`` importance-weighted estimate of log p(x) with ``samples`` draws from q(z | x)
        (a lower bound that tightens as ``samples`` grows)."""
        mean, log_var = self.encode(x)
        std = (0.5 * log_var).exp()
        terms = []
        for _ in range(samples):
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            z = mean + std * eps
            log_q = (-0.5 * (_LOG_2PI + log_var + eps**2)).sum(1)
            log_prior = (-0.5 * (_LOG_2PI + z**2)).sum(1)
            terms.append(self.likelihood.log_prob(x, self.decoder(z)) + log_prior - log_q)
        return torch.logsumexp(torch.stack(terms, 0), 0) - math.log(samples)


def elbo_loss(model: nn.Module, batch) -> Tensor:
    """The training loss of a :class:`VAE` for ``training.fit(..., loss=elbo_loss)``: the
    negative ELBO per row, averaged; the batch is ``x`` or ``(x, ...)``."""
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    return -model.elbo(x).mean()


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.LeakyReLU(), nn.BatchNorm1d(width), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def _residual_mlp(inputs: int, outputs: int, width: int, depth: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(inputs, width),
        *[_Residual(width) for _ in range(depth)],
        nn.LeakyReLU(),
        nn.BatchNorm1d(width),
        nn.Linear(width, outputs),
    )


def tabular_vae(widths: Sequence[int], latent: int = 4, width: int = 300, depth: int = 3) -> VAE:
    """A VAE for tabular rows (:class:`MixedLikelihood` over ``widths``): residual MLP encoder
    and decoder, ``depth`` blocks of ``width`` units (the CLUE paper: 300 wide, 3 deep; latent
    6 / 8 / 4 / 4 for Wine / Credit / COMPAS / LSAT)."""
    likelihood = MixedLikelihood(widths)
    for name, value in (("latent", latent), ("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "depth" else 1):
            raise expected(name, "a positive integer", value)
    encoder = _residual_mlp(likelihood.dim, 2 * latent, width, depth)
    decoder = _residual_mlp(latent, likelihood.params_dim(), width, depth)
    return VAE(encoder, decoder, likelihood, latent)


def image_vae(latent: int = 16, channels: int = 32) -> VAE:
    """A convolutional VAE for 28x28 single-channel images in [0, 1] with a Bernoulli
    likelihood."""
    c = channels
    encoder = nn.Sequential(
        nn.Conv2d(1, c, 4, 2, 1),  # 14
        nn.LeakyReLU(),
        nn.Conv2d(c, 2 * c, 4, 2, 1),  # 7
        nn.LeakyReLU(),
        nn.Flatten(),
        nn.Linear(2 * c * 49, 256),
        nn.LeakyReLU(),
        nn.Linear(256, 2 * latent),
    )
    decoder = nn.Sequential(
        nn.Linear(latent, 256),
        nn.LeakyReLU(),
        nn.Linear(256, 2 * c * 49),
        nn.LeakyReLU(),
        nn.Unflatten(1, (2 * c, 7, 7)),
        nn.ConvTranspose2d(2 * c, c, 4, 2, 1),  # 14
        nn.LeakyReLU(),
        nn.ConvTranspose2d(c, 1, 4, 2, 1),  # 28
    )
    return VAE(encoder, decoder, BernoulliLikelihood(), latent)
