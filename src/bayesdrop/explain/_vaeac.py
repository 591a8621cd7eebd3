"""VAEAC: a variational auto-encoder with arbitrary conditioning (Ivanov, Figurnov & Vetrov,
ICLR 2019) for tabular rows, to in-fill any subset of features given the others.

With b the feature mask (1 = unobserved), it has a proposal q(z | x, b), a prior network
p(z | x_o, b) that sees only the observed features, and a decoder p(x_u | z, x_o, b); it is
trained on random masks to maximise E_q log p(x_u | z, x_o, b) - KL(q || p(z | x_o, b)). Masks
are drawn per row with a uniform rate, so it learns every conditioning pattern, from nothing
observed (generation) to one feature unobserved (e.g. a label given the inputs).

Uses in CLUE's evaluation: a VAEAC fitted to real (x, y) is the *ground truth* of an artificial
data set (``sample`` with everything unobserved draws it; ``conditional_probs`` gives the true
p(y | x); ``log_prob`` the true log p(x)); and U-FIDO in-fills masked features with one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._errors import expected
from ._vae import _LOG_2PI, MixedLikelihood, _residual_mlp

__all__ = ["VAEAC", "vaeac_loss"]


class VAEAC(nn.Module):
    """A VAEAC over rows of features of ``widths`` (1: continuous, k: one-hot of k categories).

    Args:
        widths: columns per feature, in order.
        latent, width, depth: latent size and the residual MLPs' width and depth.
        mask_rate: None draws each row's rate of unobserved features uniformly (default);
            a float fixes it.
        heteroscedastic: the decoder gives each continuous value its own variance (so the
            conditional variance depends on what is observed: use it for a ground truth);
            otherwise one learned variance per column, which keeps the latent code informative
            (in-filling by the decoder's mean, as U-FIDO does).
    """

    def __init__(
        self,
        widths: Sequence[int],
        latent: int = 8,
        width: int = 200,
        depth: int = 2,
        mask_rate: float | None = None,
        heteroscedastic: bool = False,
    ) -> None:
        super().__init__()
        self.likelihood = MixedLikelihood(widths, heteroscedastic=heteroscedastic)
        d, f = self.likelihood.dim, len(self.likelihood.widths)
        self.latent, self.features, self.mask_rate = int(latent), f, mask_rate
        self.proposal = _residual_mlp(2 * d, 2 * latent, width, depth)
        self.prior = _residual_mlp(2 * d, 2 * latent, width, depth)
        self.decoder = _residual_mlp(latent + 2 * d, self.likelihood.params_dim(), width, depth)

    # -- pieces ---------------------------------------------------------------------------------
    def _check(self, x: Tensor, unobserved: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.likelihood.dim:
            raise expected("x", f"rows (B, {self.likelihood.dim})", tuple(x.shape))
        if unobserved.shape != (x.shape[0], self.features):
            raise expected("unobserved", f"a (B, {self.features}) feature mask", tuple(unobserved.shape))
        return self.likelihood.columns_of(unobserved.to(x.dtype))

    @staticmethod
    def _gaussian(h: Tensor, latent: int) -> tuple[Tensor, Tensor]:
        return h[:, :latent], h[:, latent:].clamp(-12.0, 8.0)

    def prior_of(self, x: Tensor, unobserved: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of p(z | x_o, b); ``unobserved`` ``(B, F)`` in {0, 1}."""
        b = self._check(x, unobserved)
        return self._gaussian(self.prior(torch.cat([x * (1 - b), b], 1)), self.latent)

    def decode_params(self, z: Tensor, x: Tensor, unobserved: Tensor) -> Tensor:
        b = self._check(x, unobserved)
        return self.decoder(torch.cat([z, x * (1 - b), b], 1))

    # -- training -------------------------------------------------------------------------------
    def random_mask(self, rows: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        rate = (
            torch.rand(rows, 1, generator=generator)
            if self.mask_rate is None
            else torch.full((rows, 1), float(self.mask_rate))
        )
        return (torch.rand(rows, self.features, generator=generator) < rate).float().to(device)

    def elbo(self, x: Tensor, unobserved: Tensor) -> Tensor:
        """``(B,)`` lower bound of log p(x_u | x_o, b), one sample of z from the proposal."""
        b = self._check(x, unobserved)
        q_mean, q_log_var = self._gaussian(self.proposal(torch.cat([x, b], 1)), self.latent)
        p_mean, p_log_var = self._gaussian(self.prior(torch.cat([x * (1 - b), b], 1)), self.latent)
        z = q_mean + torch.randn_like(q_mean) * (0.5 * q_log_var).exp()
        params = self.decoder(torch.cat([z, x * (1 - b), b], 1))
        log_lik = (self.likelihood.feature_log_prob(x, params) * unobserved).sum(1)
        kl = 0.5 * (p_log_var - q_log_var + (q_log_var.exp() + (q_mean - p_mean) ** 2) / p_log_var.exp() - 1.0).sum(1)
        return log_lik - kl

    # -- using it -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, x: Tensor, unobserved: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``x`` with its unobserved features drawn from p(x_u | x_o, b) (z from the prior
        network, then the decoder's distribution)."""
        b = self._check(x, unobserved)
        mean, log_var = self.prior_of(x, unobserved)
        z = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        drawn = self.likelihood.sample(self.decode_params(z, x, unobserved), generator)
        return x * (1 - b) + drawn * b

    def infill(
        self,
        x: Tensor,
        unobserved: Tensor,
        samples: int = 1,
        generator: torch.Generator | None = None,
        hard: bool = False,
    ) -> Tensor:
        """``x`` with its unobserved features set to the decoder's mean (categories as
        probabilities, or one-hot with ``hard``), averaged over ``samples`` draws of z;
        differentiable in ``x`` and in a relaxed (fractional) ``unobserved`` mask."""
        b = self._check(x, unobserved)
        mean, log_var = self.prior_of(x, unobserved)
        total = 0.0
        for _ in range(samples):
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            params = self.decode_params(mean + (0.5 * log_var).exp() * eps, x, unobserved)
            total = total + self.likelihood.mean(params, hard=hard)
        return x * (1 - b) + (total / samples) * b

    @torch.no_grad()
    def conditional_probs(
        self, x: Tensor, target: int, samples: int = 100, generator: torch.Generator | None = None
    ) -> Tensor:
        """``(B, k)`` p(feature ``target`` | the other features): the categorical feature's
        probabilities averaged over z ~ p(z | x_o, b) (the ground-truth predictive)."""
        if self.likelihood.widths[target] < 2:
            raise expected("target", "the index of a categorical feature", target)
        unobserved = torch.zeros(x.shape[0], self.features, dtype=x.dtype)
        unobserved[:, target] = 1.0
        start = sum(self.likelihood.widths[:target])
        width = self.likelihood.widths[target]
        mean, log_var = self.prior_of(x, unobserved)
        total = torch.zeros(x.shape[0], width, dtype=x.dtype)
        for _ in range(samples):
            z = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            total += F.softmax(self.decode_params(z, x, unobserved)[:, start : start + width], 1)
        return total / samples

    @torch.no_grad()
    def conditional_moments(
        self, x: Tensor, target: int, samples: int = 100, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean and variance ``(B,)`` of the continuous feature ``target`` given the others:
        a mixture over z ~ p(z | x_o, b) of the decoder's Gaussians (the ground-truth predictive
        of a regression target)."""
        if self.likelihood.widths[target] != 1:
            raise expected("target", "the index of a continuous feature", target)
        unobserved = torch.zeros(x.shape[0], self.features, dtype=x.dtype)
        unobserved[:, target] = 1.0
        column = sum(self.likelihood.widths[:target])
        position = int((self.likelihood.continuous == column).nonzero()[0, 0])
        mean, log_var = self.prior_of(x, unobserved)
        means, noises = [], []
        for _ in range(samples):
            z = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            params = self.decode_params(z, x, unobserved)
            means.append(params[:, column])
            noises.append(self.likelihood.continuous_log_var(params)[:, position].exp())
        stacked = torch.stack(means)
        return stacked.mean(0), stacked.var(0, unbiased=False) + torch.stack(noises).mean(0)

    @torch.no_grad()
    def log_prob(
        self, x: Tensor, features: Sequence[int], samples: int = 100, generator: torch.Generator | None = None
    ) -> Tensor:
        """``(B,)`` importance-weighted estimate of log p(x_S) of the features ``features``
        (the others are marginalised out): z from p(z | x_S observed) as proposal, weighed by
        p(z | nothing observed) p(x_S | z) / proposal."""
        rows = x.shape[0]
        chosen = torch.zeros(rows, self.features, dtype=x.dtype)
        chosen[:, list(features)] = 1.0
        nothing = torch.ones(rows, self.features, dtype=x.dtype)
        q_mean, q_log_var = self.prior_of(x, 1 - chosen)  # condition on the chosen features
        p_mean, p_log_var = self.prior_of(x, nothing)
        terms = []
        for _ in range(samples):
            eps = torch.randn(q_mean.shape, generator=generator, dtype=q_mean.dtype)
            z = q_mean + (0.5 * q_log_var).exp() * eps
            log_q = (-0.5 * (_LOG_2PI + q_log_var + eps**2)).sum(1)
            log_p_z = (-0.5 * (_LOG_2PI + p_log_var + (z - p_mean) ** 2 / p_log_var.exp())).sum(1)
            params = self.decode_params(z, x, nothing)
            log_lik = (self.likelihood.feature_log_prob(x, params) * chosen).sum(1)
            terms.append(log_lik + log_p_z - log_q)
        return torch.logsumexp(torch.stack(terms), 0) - math.log(samples)


def vaeac_loss(model: VAEAC, batch) -> Tensor:
    """``training.fit(vaeac, data, loss=vaeac_loss)``: the negative ELBO under a fresh random mask
    per row (drawn from torch's generator, which ``fit`` seeds per epoch)."""
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    mask = model.random_mask(x.shape[0], device=x.device)
    return -model.elbo(x, mask).mean()
