"""Regression metrics against SciPy (norm, logsumexp, numerical integration) and direct
formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import sklearn.metrics
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesdrop import BayesdropError
from bayesdrop.metrics import (
    crps_gaussian,
    crps_mixture,
    gaussian_nll,
    interval_width,
    mae,
    mc_log_likelihood,
    picp,
    quantile_calibration_error,
    rmse,
)


def _data(n: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(n, 2))
    var = rng.uniform(0.2, 2.0, size=(n, 2))
    target = mean + rng.normal(size=(n, 2)) * np.sqrt(var) * 1.3
    return mean, var, target


def _reference_sklearn_rmse(mean, target) -> float:
    return math.sqrt(sklearn.metrics.mean_squared_error(target.ravel(), mean.ravel()))


def _reference_scipy_gaussian_nll(mean, var, target) -> float:
    logpdf = scipy.stats.norm.logpdf(target, loc=mean, scale=np.sqrt(var))
    return float(-logpdf.reshape(len(mean), -1).sum(1).mean())


def _reference_gal_mc_log_likelihood(samples, target, tau) -> float:
    """The formula of Gal & Ghahramani (2016), 1-D targets."""
    t = samples.shape[1]
    ll = (
        scipy.special.logsumexp(-0.5 * tau * (target[:, None] - samples) ** 2, axis=1)
        - np.log(t)
        - 0.5 * np.log(2 * np.pi)
        + 0.5 * np.log(tau)
    )
    return float(ll.mean())


def _reference_scipy_picp(mean, var, target, level) -> float:
    lo, hi = scipy.stats.norm.interval(level, loc=mean, scale=np.sqrt(var))
    return float(((target >= lo) & (target <= hi)).mean())


def _reference_quad_crps(cdf, y: float, lo: float, hi: float) -> float:
    """CRPS = integral of (F(x) - 1[x >= y])^2 dx, integrated numerically on both sides of y."""
    left = scipy.integrate.quad(lambda x: cdf(x) ** 2, lo, y, limit=200)[0]
    right = scipy.integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, hi, limit=200)[0]
    return left + right


def _reference_direct_sample_crps(samples: np.ndarray, y: float) -> float:
    """E|X - y| - 0.5 E|X - X'| over the empirical samples, O(T^2)."""
    return float(np.abs(samples - y).mean() - 0.5 * np.abs(samples[:, None] - samples[None, :]).mean())


def test_rmse_mae_against_sklearn() -> None:
    mean, _, target = _data()
    assert rmse(mean, target) == pytest.approx(_reference_sklearn_rmse(mean, target))
    assert mae(mean, target) == pytest.approx(sklearn.metrics.mean_absolute_error(target.ravel(), mean.ravel()))


def test_gaussian_nll_against_scipy() -> None:
    mean, var, target = _data()
    assert gaussian_nll(mean, var, target) == pytest.approx(_reference_scipy_gaussian_nll(mean, var, target))
    per = gaussian_nll(mean, var, target, reduction="none")
    assert per.shape == (50,)
    # A scalar variance broadcasts.
    assert gaussian_nll(mean, 0.5, target) == pytest.approx(
        _reference_scipy_gaussian_nll(mean, np.full_like(mean, 0.5), target)
    )


def test_mc_log_likelihood_is_the_papers_formula() -> None:
    rng = np.random.default_rng(1)
    samples, target = rng.normal(size=(40, 25)), rng.normal(size=40)
    for tau in (0.5, 4.0):
        assert mc_log_likelihood(samples[..., None], target[:, None], tau=tau) == pytest.approx(
            _reference_gal_mc_log_likelihood(samples, target, tau)
        )
        # (N, T) samples with (N,) targets: 1-D outputs without the trailing axis.
        assert mc_log_likelihood(samples, target, tau=tau) == pytest.approx(
            _reference_gal_mc_log_likelihood(samples, target, tau)
        )


def test_mc_log_likelihood_with_per_sample_variances_against_scipy() -> None:
    rng = np.random.default_rng(2)
    means, var = rng.normal(size=(10, 7, 3)), rng.uniform(0.3, 2, size=(10, 7, 3))
    target = rng.normal(size=(10, 3))
    comp = scipy.stats.norm.logpdf(target[:, None], means, np.sqrt(var)).sum(-1)
    ref = (scipy.special.logsumexp(comp, axis=1) - np.log(7)).mean()
    assert mc_log_likelihood(means, target, variances=var) == pytest.approx(ref)
    # One sample: the Gaussian log-density.
    assert mc_log_likelihood(means[:, :1], target, variances=var[:, :1]) == pytest.approx(
        -gaussian_nll(means[:, 0], var[:, 0], target)
    )


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95])
def test_picp_and_width_against_scipy(level: float) -> None:
    mean, var, target = _data(200, seed=3)
    assert picp(mean, var, target, level) == pytest.approx(_reference_scipy_picp(mean, var, target, level))
    lo, hi = scipy.stats.norm.interval(level, loc=mean, scale=np.sqrt(var))
    assert interval_width(var, level) == pytest.approx(float((hi - lo).mean()))


def test_quantile_calibration_error_hand_checked() -> None:
    # PIT values 0.1, 0.3, 0.6, 0.8 (standard normal quantiles) with levels 0.25, 0.5, 0.75:
    # observed fractions 1/4, 2/4, 3/4 -> error 0. With every PIT at 0.05 the fractions are all
    # 1: errors 0.75, 0.5, 0.25.
    pit = np.array([0.1, 0.3, 0.6, 0.8])
    y = scipy.stats.norm.ppf(pit)
    zeros, ones = np.zeros(4), np.ones(4)
    assert quantile_calibration_error(zeros, ones, y, n_levels=3) == pytest.approx(0.0)
    y_low = scipy.stats.norm.ppf(np.full(4, 0.05))
    assert quantile_calibration_error(zeros, ones, y_low, n_levels=3) == pytest.approx((0.75 + 0.5 + 0.25) / 3)


def test_calibrated_gaussian_has_small_qce_and_nominal_coverage() -> None:
    rng = np.random.default_rng(4)
    mean, sd = rng.normal(size=20000), rng.uniform(0.5, 2, 20000)
    y = mean + sd * rng.normal(size=20000)
    assert quantile_calibration_error(mean, sd**2, y) < 0.01
    assert picp(mean, sd**2, y, 0.9) == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize(("mu", "sd", "y"), [(0.0, 1.0, 0.3), (2.0, 0.5, -1.0), (-1.0, 3.0, 4.0)])
def test_crps_gaussian_closed_form_vs_integration(mu: float, sd: float, y: float) -> None:
    ref = _reference_quad_crps(lambda x: scipy.stats.norm.cdf(x, mu, sd), y, mu - 12 * sd, mu + 12 * sd)
    got = crps_gaussian(torch.tensor([mu]), torch.tensor([sd**2]), torch.tensor([y]))
    assert got == pytest.approx(ref, rel=1e-6)


def test_crps_mixture_vs_integration() -> None:
    rng = np.random.default_rng(5)
    means, var = rng.normal(size=(3, 6)), rng.uniform(0.1, 1, size=(3, 6))
    target = np.array([0.2, -1.5, 2.5])
    per = crps_mixture(means, target, variances=var, reduction="none")
    for i in range(3):
        sds = np.sqrt(var[i])

        def cdf(x, i=i, sds=sds):
            return scipy.stats.norm.cdf(x, means[i], sds).mean()

        ref = _reference_quad_crps(cdf, target[i], -15, 15)
        assert per[i].item() == pytest.approx(ref, rel=1e-6)
    # With tau instead of per-sample variances.
    assert crps_mixture(means, target, tau=2.0) == pytest.approx(
        crps_mixture(means, target, variances=np.full_like(means, 0.5))
    )


def test_crps_of_samples_is_the_energy_form() -> None:
    rng = np.random.default_rng(6)
    samples, target = rng.normal(size=(8, 30)), rng.normal(size=8)
    per = crps_mixture(samples, target, reduction="none")
    for i in range(8):
        assert per[i].item() == pytest.approx(_reference_direct_sample_crps(samples[i], target[i]))
    # Tiny component variances approach the empirical CRPS.
    assert crps_mixture(samples, target, variances=np.full_like(samples, 1e-10)) == pytest.approx(
        per.mean().item(), abs=1e-4
    )


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), t=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_properties(n: int, t: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples, target = rng.normal(size=(n, t)), rng.normal(size=n)
    mean, var = samples.mean(1), samples.var(1) + 0.1
    assert crps_gaussian(mean, var, target) >= 0
    assert crps_mixture(samples, target) >= -1e-12
    assert 0 <= picp(mean, var, target) <= 1
    assert 0 <= quantile_calibration_error(mean, var, target) <= 1
    # Permuting the MC samples changes nothing.
    perm = rng.permutation(t)
    assert mc_log_likelihood(samples[:, perm], target, tau=2.0) == pytest.approx(
        mc_log_likelihood(samples, target, tau=2.0)
    )
    assert crps_mixture(samples[:, perm], target, tau=2.0) == pytest.approx(crps_mixture(samples, target, tau=2.0))
    # CRPS of a point prediction is the absolute error.
    assert crps_gaussian(mean, np.full(n, 1e-18), target) == pytest.approx(mae(mean, target), abs=1e-7)


def test_bad_inputs() -> None:
    mean, var, target = _data(5)
    with pytest.raises(BayesdropError, match=r"`target` to have the shape of `mean` \(5, 2\)"):
        rmse(mean, target[:, :1].repeat(3, 1))
    with pytest.raises(BayesdropError, match=r"`target` to have the shape of `mean`"):
        rmse(mean, target[:4])
    with pytest.raises(BayesdropError, match=r"`var` to be strictly positive variances"):
        gaussian_nll(mean, -var, target)
    with pytest.raises(BayesdropError, match=r"`mean` to be finite"):
        picp(np.full((5, 2), np.nan), var, target)
    with pytest.raises(BayesdropError, match=r"exactly one of the arguments `variances`.*neither"):
        mc_log_likelihood(np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(BayesdropError, match=r"exactly one of the arguments `variances`.*both"):
        mc_log_likelihood(np.zeros((5, 3)), np.zeros(5), tau=1.0, variances=np.ones((5, 3)))
    with pytest.raises(BayesdropError, match=r"`tau` to be a positive number"):
        mc_log_likelihood(np.zeros((5, 3)), np.zeros(5), tau=-1.0)
    with pytest.raises(BayesdropError, match=r"`variances` to have the shape of `sample_means`"):
        crps_mixture(np.zeros((5, 3)), np.zeros(5), variances=np.ones((5, 2)))
    with pytest.raises(BayesdropError, match=r"`target` to have the shape of `sample_means"):
        crps_mixture(np.zeros((5, 3)), np.zeros(4))
    with pytest.raises(BayesdropError, match=r"`level` to be a number in \(0, 1\)"):
        picp(mean, var, target, level=95)
    with pytest.raises(BayesdropError, match=r"`mean` to be a non-empty tensor"):
        mae(np.zeros(0), np.zeros(0))
