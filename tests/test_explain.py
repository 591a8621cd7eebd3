"""CLUE: the objective and its gradients, early stopping, immutable features, a toy problem with a
known answer, the VAE likelihoods against direct formulas, and the tabular data loaders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import bayesdrop as bd
from bayesdrop import training
from bayesdrop.explain import (
    VAE,
    BernoulliLikelihood,
    MixedLikelihood,
    clue,
    elbo_loss,
    sensitivity,
    tabular_vae,
    uncertainty_of,
)


class _Identity(nn.Module):
    """A stand-in generative model whose latent space is the input space."""

    latent = 2

    def encode(self, x):
        return x.clone(), torch.zeros_like(x)

    def decode(self, z, hard=False):
        return z


def _gap_model():
    """Two classes on the line: x1 < 0 is class 0, x1 > 0 class 1; uncertain near 0."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(200, 1, generator=generator) * 2 + 1, torch.rand(200, 1, generator=generator) * 2 - 3])
    x = torch.cat([x, torch.randn(400, 1, generator=generator) * 0.3], 1)
    y = torch.cat([torch.ones(200), torch.zeros(200)]).long()
    with training.seeded(0):
        net = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    mc = bd.wrap(net)
    training.fit(mc, torch.utils.data.TensorDataset(x, y), epochs=40, batch_size=64, lr=1e-2, seed=0)
    return mc


@pytest.fixture(scope="module")
def gap_model():
    return _gap_model()


def test_a_point_in_the_gap_between_two_classes_moves_into_a_class(gap_model):
    x = torch.tensor([[0.0, 0.0], [0.05, 0.1]])
    result = clue(gap_model, _Identity(), x, lam=0.5, steps=200, lr=0.05, samples=64, tolerance=1e-5)
    assert bool((result.before["total"] > 0.4).all())  # unsure in the gap
    assert bool((result.after["total"] < 0.5 * result.before["total"]).all())
    assert bool((result.explanation[:, 0].abs() > 0.3).all())  # moved towards a class along x1
    assert bool((result.distance > 0).all()) and result.steps.max() <= 200


def test_immutable_columns_keep_their_values_and_results_do_not_depend_on_other_rows(gap_model):
    x = torch.tensor([[0.0, 0.5], [0.1, -0.2], [-0.05, 0.0]])
    fixed = torch.tensor([True, False])  # x1 decides the class: frozen, CLUE may only move x2
    result = clue(gap_model, _Identity(), x, lam=0.5, steps=30, immutable=fixed)
    assert torch.equal(result.explanation[:, 0], x[:, 0])
    alone = clue(gap_model, _Identity(), x[1:2], lam=0.5, steps=30, immutable=fixed)
    assert torch.allclose(alone.explanation, result.explanation[1:2]) and alone.steps.item() == result.steps[1].item()


def test_early_stopping_stops_after_patience_steps_without_improvement(gap_model):
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    stuck = clue(gap_model, _Identity(), x, steps=100, tolerance=math.inf, patience=4)
    assert stuck.steps.tolist() == [3, 3] and bool(stuck.converged.all())  # the 4th check stops it
    free = clue(gap_model, _Identity(), x, steps=7, tolerance=0.0, patience=100)
    assert free.steps.tolist() == [7, 7] and not bool(free.converged.any())


def test_objective_gradient_matches_finite_differences():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 3)).double()
    mc = bd.wrap(net)
    decoder = nn.Linear(2, 3).double()
    x = torch.randn(4, 3, dtype=torch.float64)

    def objective(z):
        decoded = decoder(z)
        pred = mc.predict(decoded, samples=16, seed=3, grad=True, consistent=True)
        u = uncertainty_of(pred, {"aleatoric": 1.0, "epistemic": 0.5})
        return u + 0.7 / 3 * ((decoded - x).pow(2).sum(1) + 1e-12).sqrt()

    z = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: objective(v).sum(), (z,), eps=1e-6, atol=1e-6)


def test_uncertainty_term_is_the_engines_decomposition():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    pred = bd.wrap(net).predict(torch.randn(5, 4), samples=50, seed=0)
    for kind in ("total", "aleatoric", "epistemic"):
        assert torch.equal(uncertainty_of(pred, kind), getattr(pred, kind))
    mixed = uncertainty_of(pred, {"aleatoric": 2.0, "epistemic": 0.5})
    assert torch.allclose(mixed, 2.0 * pred.aleatoric + 0.5 * pred.epistemic)
    reg = bd.wrap(
        nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2)), task="regression", tau=4.0
    )
    rp = reg.predict(torch.randn(5, 4), samples=50, seed=0)
    assert torch.allclose(uncertainty_of(rp, "total"), rp.total.sum(1).sqrt(), atol=1e-6)  # standard deviations
    assert torch.allclose(uncertainty_of(rp, "aleatoric"), torch.full((5,), math.sqrt(2 * 0.25)), atol=1e-5)
    with pytest.raises(bd.BayesdropError, match="uncertainty"):
        uncertainty_of(pred, "risk")


def test_bad_arguments_are_named(gap_model):
    x = torch.zeros(2, 2)
    with pytest.raises(bd.BayesdropError, match="distance"):
        clue(gap_model, _Identity(), x, distance="cosine")
    with pytest.raises(bd.BayesdropError, match="immutable"):
        clue(gap_model, _Identity(), x, immutable=torch.tensor([True]))
    with pytest.raises(bd.BayesdropError, match="steps"):
        clue(gap_model, _Identity(), x, steps=0)


def test_sensitivity_step_lowers_uncertainty(gap_model):
    x = torch.tensor([[0.05, 0.0], [-0.05, 0.0]])
    before = gap_model.predict(x, samples=200, seed=0).total
    after = gap_model.predict(sensitivity(gap_model, x, 0.3), samples=200, seed=0).total
    assert bool((after < before).all())


def test_mixed_likelihood_matches_gaussian_and_categorical_formulas():
    likelihood = MixedLikelihood([1, 3, 1, 2])
    with torch.no_grad():
        likelihood.log_var.copy_(torch.tensor([0.3, -0.5]))
    generator = torch.Generator().manual_seed(0)
    params = torch.randn(6, 7, generator=generator, dtype=torch.float64)
    cats1 = torch.randint(0, 3, (6,), generator=generator)
    cats2 = torch.randint(0, 2, (6,), generator=generator)
    cont = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    x = torch.cat(
        [cont[:, :1], nn.functional.one_hot(cats1, 3), cont[:, 1:], nn.functional.one_hot(cats2, 2)], 1
    ).double()
    got = likelihood.double().log_prob(x, params)
    p = params.numpy()
    sd = np.exp(likelihood.log_var.detach().numpy() / 2)
    expected = (
        stats.norm.logpdf(cont[:, 0].numpy(), p[:, 0], sd[0])
        + stats.norm.logpdf(cont[:, 1].numpy(), p[:, 4], sd[1])
        + np.log(np.exp(p[:, 1:4]) / np.exp(p[:, 1:4]).sum(1, keepdims=True))[np.arange(6), cats1.numpy()]
        + np.log(np.exp(p[:, 5:7]) / np.exp(p[:, 5:7]).sum(1, keepdims=True))[np.arange(6), cats2.numpy()]
    )
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-10)
    hard = likelihood.mean(params, hard=True)
    assert torch.equal(hard[:, 1:4], nn.functional.one_hot(params[:, 1:4].argmax(1), 3).double())
    assert torch.equal(hard[:, 0], params[:, 0])
    bern = BernoulliLikelihood().log_prob(torch.tensor([[1.0, 0.0, 0.25]]), torch.tensor([[0.3, -1.2, 2.0]]))
    q = torch.sigmoid(torch.tensor([0.3, -1.2, 2.0]))
    direct = math.log(q[0]) + math.log(1 - q[1]) + 0.25 * math.log(q[2]) + 0.75 * math.log(1 - q[2])
    assert bern.item() == pytest.approx(direct, rel=1e-5)


def test_importance_weighted_log_likelihood_is_exact_with_the_exact_posterior():
    """A linear decoder with Gaussian noise has p(x) = N(b, W W^T + s^2 I); with orthogonal
    columns of W the posterior is a diagonal Gaussian, and with it as q every importance weight
    equals p(x): the estimate is exact for any number of samples."""
    w = torch.tensor([[1.5, 0.0], [0.0, -0.7], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([0.2, -1.0, 0.5], dtype=torch.float64)
    s2 = 0.5
    decoder = nn.Linear(2, 3).double()
    with torch.no_grad():
        decoder.weight.copy_(w)
        decoder.bias.copy_(b)
    likelihood = MixedLikelihood([1, 1, 1]).double()
    with torch.no_grad():
        likelihood.log_var.fill_(math.log(s2))
    posterior_var = 1.0 / (1.0 + (w**2).sum(0) / s2)  # (2,)

    class Posterior(nn.Module):
        def forward(self, x):
            mean = (x - b) @ w * posterior_var / s2
            return torch.cat([mean, posterior_var.log().expand_as(mean)], 1)

    vae = VAE(Posterior(), decoder, likelihood, latent=2)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = stats.multivariate_normal(b.numpy(), (w @ w.T).numpy() + s2 * np.eye(3)).logpdf(x.numpy())
    generator = torch.Generator().manual_seed(0)
    np.testing.assert_allclose(vae.log_prob(x, samples=3, generator=generator).numpy(), exact, rtol=1e-9)
    # a worse proposal gives a lower bound on average
    vae.encoder = nn.Linear(3, 4).double()
    assert vae.log_prob(x, samples=50, generator=generator).mean().item() < exact.mean()
    # the ELBO's KL term is the closed form of KL(q || N(0, I))
    mean, log_var = vae.encode(x)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.manual_seed(5)
    elbo = vae.elbo(x)
    torch.manual_seed(5)
    z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
    assert torch.allclose(elbo, likelihood.log_prob(x, decoder(z)) - kl)


def test_tabular_vae_trains_through_fit_and_reconstructs_categories():
    generator = torch.Generator().manual_seed(0)
    category = torch.randint(0, 3, (600,), generator=generator)
    value = category.double().float()[:, None] + 0.1 * torch.randn(600, 1, generator=generator)
    x = torch.cat([value, nn.functional.one_hot(category, 3).float()], 1)
    with training.seeded(0):
        vae = tabular_vae([1, 3], latent=2, width=32, depth=1)
    history = training.fit(vae, torch.utils.data.TensorDataset(x), epochs=30, lr=3e-3, loss=elbo_loss, seed=0)
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    vae.eval()
    with torch.no_grad():
        decoded = vae.decode(vae.encode(x)[0], hard=True)
    assert (decoded[:, 1:].argmax(1) == category).float().mean() > 0.95


@pytest.mark.parametrize(
    "name, n_train, n_test, width",
    [
        ("lsat", 17_432, 4_358, 12),
        ("compas", 5_554, 618, 17),
        ("compas-no-recid", 5_554, 618, 15),
        ("credit", 27_000, 3_000, 29),
        ("wine", 1_440, 159, 11),
    ],
)
def test_tabular_loaders_rows_splits_and_round_trip(name, n_train, n_test, width):
    from bayesdrop.data.tabular import load_tabular

    data = load_tabular(name)
    assert data.x_train.shape == (n_train, width) and data.x_test.shape == (n_test, width)
    assert len(data.y_train) == n_train and len(data.y_test) == n_test
    assert sum(data.widths) == width
    if data.task == "regression":
        assert abs(float(data.y_train.mean())) < 1e-4 and abs(float(data.y_train.std()) - 1) < 1e-3
    rows = data.decode(data.x_test[:20])
    assert torch.allclose(data.encode(rows), data.x_test[:20], atol=1e-4)
    for f, cols in zip(data.features, data.column_slices(), strict=True):
        if f.kind == "categorical":
            assert torch.equal(data.x_train[:, cols].sum(1), torch.ones(n_train))  # one-hot
    with pytest.raises(bd.BayesdropError, match="name"):
        load_tabular("adult")


def test_explain_experiment_caches_models_tracks_and_the_cli_sweeps_lambda(tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from bayesdrop.cli import main
    from bayesdrop.explain import ExplainConfig, run_explain

    monkeypatch.chdir(tmp_path)
    small = dict(
        dataset="wine",
        epochs=3,
        vae_epochs=3,
        hidden=32,
        vae_width=32,
        vae_depth=1,
        steps=10,
        samples=8,
        eval_samples=16,
    )
    config = ExplainConfig(**small, output_dir="out", tracking=True)
    first = run_explain(config, verbose=False)
    assert first["points"] == round(0.2 * 159) and "class_flip_rate" not in first
    assert first["before"]["total"]["mean"] > 0 and first["after"]["total"]["mean"] > 0
    assert {"net.pt", "vae.pt"} <= {p.name for p in config.models_folder().iterdir()}
    assert run_explain(config, verbose=False) == first  # read back
    for chart in first["charts"]:
        assert Path(chart).stat().st_size > 5_000
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("bayesdrop-explain").experiment_id])
    assert run.data.metrics["total_before_mean"] == pytest.approx(first["before"]["total"]["mean"])
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in small.items()]
    assert main(["explain", *flags, "--output-dir", "out", "--lam", "1,3", "--no-track"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | total |" in out and "| 3 | total |" in out
    assert "network trained" not in out  # the models were cached by the first run (lambda 1 = 1.0)
    assert main(["explain", "--dataset", "iris", "--no-track"]) == 2


@pytest.fixture(scope="module")
def toy_vaeac():
    """x1 ~ N(0, 1), a class c = [x1 + 0.3 eps > 0]: the true p(c | x1) = Phi(x1 / 0.3)."""
    from bayesdrop.explain import VAEAC, vaeac_loss

    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(2000, 1, generator=generator)
    c = (x1[:, 0] + 0.3 * torch.randn(2000, generator=generator) > 0).long()
    rows = torch.cat([x1, nn.functional.one_hot(c, 2).float()], 1)
    with training.seeded(0):
        model = VAEAC([1, 2], latent=2, width=64, depth=1)
    training.fit(model, torch.utils.data.TensorDataset(rows), epochs=40, lr=2e-3, loss=vaeac_loss, seed=0)
    return model.eval(), rows, x1, c


def test_vaeac_conditional_and_marginal_match_the_known_truth(toy_vaeac):
    model, rows, x1, c = toy_vaeac
    probs = model.conditional_probs(rows[:500], target=1, samples=50, generator=torch.Generator().manual_seed(1))
    truth = torch.distributions.Normal(0.0, 0.3).cdf(x1[:500, 0])
    assert (probs[:, 1] - truth).abs().mean() < 0.06
    log_p = model.log_prob(rows[:500], features=[0], samples=50, generator=torch.Generator().manual_seed(2))
    assert abs(log_p.mean().item() - torch.distributions.Normal(0.0, 1.0).log_prob(x1[:500, 0]).mean().item()) < 0.1
    drawn = model.sample(torch.zeros(1000, 3), torch.ones(1000, 2), generator=torch.Generator().manual_seed(3))
    assert abs(drawn[:, 0].mean().item()) < 0.3 and abs(drawn[:, 0].std().item() - 1) < 0.25  # roughly N(0, 1)
    assert torch.equal(drawn[:, 1:].sum(1), torch.ones(1000))  # categories drawn as one-hot
    kept = model.sample(rows[:10], torch.tensor([[0.0, 1.0]] * 10))
    assert torch.equal(kept[:, 0], rows[:10, 0])  # observed features are kept
    with pytest.raises(bd.BayesdropError, match="categorical"):
        model.conditional_probs(rows[:5], target=0)


@pytest.fixture(scope="module")
def gap_infiller():
    """A VAEAC over the gap model's inputs: x1 is +-(1..3) (the class side), x2 small noise."""
    from bayesdrop.explain import VAEAC, vaeac_loss

    generator = torch.Generator().manual_seed(0)
    side = torch.randint(0, 2, (2000,), generator=generator) * 2 - 1
    x = torch.stack(
        [side * (1 + 2 * torch.rand(2000, generator=generator)), torch.randn(2000, generator=generator) * 0.3], 1
    )
    with training.seeded(0):
        infiller = VAEAC([1, 1], latent=2, width=64, depth=1)
    training.fit(infiller, torch.utils.data.TensorDataset(x), epochs=30, lr=2e-3, loss=vaeac_loss, seed=0)
    return infiller.eval()


def test_ufido_hides_the_feature_that_causes_the_uncertainty(gap_model, gap_infiller):
    """In the gap model x1 decides the class; the VAEAC in-fills a hidden x1 from x2. Hiding x1
    is the only way to become sure, so U-FIDO hides it and not x2."""
    from bayesdrop.explain import ufido

    infiller = gap_infiller
    points = torch.tensor([[0.02, 0.0], [-0.03, 0.1]])
    explanation, hidden = ufido(gap_model, infiller, points, l1=0.05, steps=60, lr=0.2, samples=32)
    assert hidden[:, 0].all() and not hidden[:, 1].any()
    assert torch.equal(explanation[:, 1], points[:, 1])
    before = gap_model.predict(points, samples=200, seed=0).total
    after = gap_model.predict(explanation, samples=200, seed=0).total
    assert bool((after < before).all())


def test_conditional_clue_holds_the_kept_features_and_moves_the_others(gap_model, gap_infiller):
    from bayesdrop.explain import conditional_clue

    points = torch.tensor([[0.02, 0.1], [-0.03, -0.2]])
    result = conditional_clue(gap_model, gap_infiller, points, keep=[1], lam=0.1, steps=40)
    assert torch.equal(result.explanation[:, 1], points[:, 1])
    assert bool((result.explanation[:, 0].abs() > 0.3).all())  # x1 generated on one side
    assert bool((result.after["total"] < result.before["total"]).all())
    with pytest.raises(bd.BayesdropError, match="keep"):
        conditional_clue(gap_model, gap_infiller, points, keep=[2])


def test_clue_set_gives_distinct_confident_explanations_inside_the_latent_ball(gap_model):
    from bayesdrop.explain import clue_set

    x = torch.tensor([[0.0, 0.0], [0.05, 0.2]])
    diverse = clue_set(gap_model, _Identity(), x, count=4, diversity=0.5, latent_radius=2.5, steps=60, lr=0.05)
    plain = clue_set(gap_model, _Identity(), x, count=4, diversity=0.0, latent_radius=2.5, steps=60, lr=0.05)
    assert diverse.explanations.shape == (2, 4, 2) and diverse.after["total"].shape == (2, 4)
    assert bool((diverse.spread > plain.spread).all())
    assert bool(((diverse.z - x[:, None, :]).norm(dim=-1) <= 2.5 + 1e-5).all())
    assert bool((diverse.after["total"].mean(1) < diverse.before["total"]).all())
    with pytest.raises(bd.BayesdropError, match="count"):
        clue_set(gap_model, _Identity(), x, count=1)


def test_vaeac_conditional_moments_of_a_continuous_target():
    """y = 2 x1 + 0.5 eps: the true p(y | x1) has mean 2 x1 and variance 0.25."""
    from bayesdrop.explain import VAEAC, vaeac_loss

    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(2000, 1, generator=generator)
    rows = torch.cat([x1, 2 * x1 + 0.5 * torch.randn(2000, 1, generator=generator)], 1)
    with training.seeded(0):
        model = VAEAC([1, 1], latent=2, width=64, depth=1, heteroscedastic=True)
    training.fit(model, torch.utils.data.TensorDataset(rows), epochs=40, lr=2e-3, loss=vaeac_loss, seed=0)
    mean, var = model.eval().conditional_moments(
        rows[:500], target=1, samples=50, generator=torch.Generator().manual_seed(1)
    )
    assert (mean - 2 * x1[:500, 0]).abs().mean() < 0.15
    assert abs(var.mean().item() - 0.25) < 0.1
    with pytest.raises(bd.BayesdropError, match="continuous"):
        VAEAC([2, 1]).conditional_moments(torch.zeros(3, 3), target=0)
