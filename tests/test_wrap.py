"""Wrapping: what becomes stochastic, what stays untouched, and the errors."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bayesdrop as bd
from _models import (
    Attention,
    ConvBN,
    Functional,
    GaussianHead,
    NoDropout,
    ReversedOrder,
    Untraceable,
    all_dropout_modules,
    force_full_replication,
)

IMAGES = torch.randn(6, 1, 8, 8)


def _trained_bn(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give BatchNorm non-trivial running statistics, then switch to eval."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def _state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method,p", [("dropout", None), ("gaussian", None), ("dropconnect", 0.3)])
def test_batchnorm_buffers_and_flags_untouched(method, p):
    model = _trained_bn(ConvBN(), IMAGES)
    before = _state(model)
    flags = [m.training for m in model.modules()]
    mc = bd.wrap(model, method=method, p=p)
    pred = mc.predict(IMAGES, samples=16, seed=0)
    assert pred.epistemic.max() > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == flags


@pytest.mark.parametrize("make", [ConvBN, Functional, ReversedOrder, Untraceable, all_dropout_modules])
def test_unwrap_restores_model_exactly(make):
    model = make().eval()
    x = (
        IMAGES
        if make is ConvBN
        else (
            torch.randn(4, 2, 8, 8)
            if make is all_dropout_modules
            else torch.randn(4, {Functional: 6, ReversedOrder: 5, Untraceable: 4}[make])
        )
    )
    reference = model(x)
    before = _state(model)
    mc = bd.wrap(model, p=0.2 if make is all_dropout_modules else None)
    mc.predict(x, samples=5, seed=1)
    original = bd.unwrap(mc)
    assert original is model
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    assert torch.equal(original(x), reference)


def test_every_dropout_module_kind_is_sampled():
    model = all_dropout_modules().eval()
    mc = bd.wrap(model)
    pred = mc.predict(torch.randn(3, 2, 8, 8), samples=8, seed=0)
    kinds = {s.function for s in mc.active_sites}
    assert kinds == {"dropout2d", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout3d", "dropout"}
    assert (pred.epistemic > 0).all()


def test_functional_dropout_caught_in_eval_mode():
    model = Functional().eval()
    mc = bd.wrap(model)
    pred = mc.predict(torch.randn(5, 6), samples=30, seed=0)
    assert [s.p for s in mc.sites] == pytest.approx([0.1, 0.2, 0.3])
    assert (pred.epistemic > 0).all()
    assert "prefix" in mc.describe()


def test_last_layer_is_last_executed_not_last_registered():
    model = ReversedOrder().eval()
    mc = bd.wrap(model, last_layer=True)
    mc.predict(torch.randn(3, 5), samples=2, seed=0)
    active = mc.active_sites
    assert [s.where for s in active] == ["late"]
    # With only `late` stochastic, fc1's output is deterministic: the split caches it.
    assert "prefix cached" in mc.describe()
    assert mc._runtime.route.split is not None and mc._runtime.route.split.prefix_nodes >= 2


def test_attention_dropout_is_sampled():
    model = Attention().eval()
    mc = bd.wrap(model)
    x = torch.randn(4, 5, 8)
    pred = mc.predict(x, samples=20, seed=0)
    assert sorted(s.kind.value for s in mc.sites) == ["attention", "attention"]
    assert (pred.epistemic > 0).all()
    mha_only = Attention(0.3, 0.0).eval()
    bd.wrap(mha_only).predict(x, samples=3)
    assert torch.equal(mha_only(x), mha_only(x))  # eval MHA stays deterministic outside predict


def test_attention_each_site_alone_gives_variance():
    x = torch.randn(3, 5, 8)
    for mha_p, sdpa_p in [(0.3, 0.0), (0.0, 0.3)]:
        pred = bd.wrap(Attention(mha_p, sdpa_p).eval()).predict(x, samples=10, seed=0)
        assert (pred.epistemic > 0).all()


def test_transformer_encoder_layer_dropouts_are_sampled():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True).eval()
    model = nn.Sequential(layer, nn.Flatten(), nn.Linear(40, 3)).eval()
    mc = bd.wrap(model)
    pred = mc.predict(torch.randn(4, 5, 8), samples=10, seed=0)
    assert len(mc.active_sites) == 4  # attention + 3 dropouts
    assert (pred.epistemic > 0).all()


def test_untraceable_model_caches_its_prefix_at_module_boundaries_and_says_so():
    calls: list[int] = []

    class Counting(nn.Linear):
        def forward(self, x):
            calls.append(x.shape[0])
            return super().forward(x)

    model = Untraceable().eval()
    counting = Counting(4, 8)
    counting.load_state_dict(model.fc1.state_dict())
    model.fc1 = counting
    mc = bd.wrap(model)
    x = torch.randn(3, 4)
    mc.predict(x, samples=4, seed=0)
    assert "module boundaries" in mc.describe() and "torch.fx" in mc.describe()
    calls.clear()
    got = mc.predict(x, samples=16, seed=1, keep_samples=True, chunk_size=4)
    assert calls == [3]  # fc1 ran once on the 3 input rows, not once per chunk of 4 x 3 rows
    full = bd.wrap(model)
    full.predict(x, samples=1)
    force_full_replication(full)
    reference = full.predict(x, samples=16, seed=1, keep_samples=True, chunk_size=4)
    torch.testing.assert_close(got.samples, reference.samples)


def test_a_model_that_cannot_be_split_warns_once_with_the_reason():
    class BatchSized(nn.Module):
        def forward(self, x):
            return x * x.shape[0]  # depends on the batch size, not on each row alone

    class Shuffles(nn.Module):
        """Its prefix module is not a function of its input rows alone."""

        def __init__(self):
            super().__init__()
            self.fc1, self.scale = nn.Linear(4, 8), BatchSized()
            self.drop, self.fc2 = nn.Dropout(0.3), nn.Linear(8, 2)

        def forward(self, x):
            if x.sum() > 1e9:  # data-dependent control flow: torch.fx cannot trace this
                return x
            return self.fc2(self.drop(self.scale(self.fc1(x))))

    mc = bd.wrap(Shuffles().eval())
    with pytest.warns(bd.BayesdropWarning, match="replicating the whole model"):
        mc.predict(torch.randn(3, 4), samples=4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mc.predict(torch.randn(3, 4), samples=4, seed=0)  # once per wrapper
    assert "full replication" in mc.describe()


def test_no_dropout_with_p_adds_dropout_before_last_executed_layer():
    model = NoDropout().eval()
    mc = bd.wrap(model, p=0.5)
    pred = mc.predict(torch.randn(4, 4), samples=20, seed=0)
    active = mc.active_sites
    assert [s.where for s in active] == ["head"]
    assert (pred.epistemic > 0).all()


def test_layers_choose_where_dropout_goes_and_p_overrides_rates():
    model = ConvBN().eval()
    mc = bd.wrap(model, layers=["fc1"], p=0.25)
    mc.predict(IMAGES, samples=3, seed=0)
    active = mc.active_sites
    assert [(s.where, s.p) for s in active] == [("fc1", 0.25)]
    mc2 = bd.wrap(model, p=0.1)
    mc2.predict(IMAGES, samples=3, seed=0)
    assert {s.p for s in mc2.active_sites} == {0.1}


def test_dropconnect_keeps_layer_options_and_trained_weights():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, bias=True)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(6 * 4 * 4, 2)).eval()
    x = torch.randn(5, 4, 7, 7)
    mc = bd.wrap(model, method="dropconnect", p=1e-12, layers=[nn.Conv2d])
    pred = mc.predict(x, samples=3, seed=0, keep_samples=True)
    for t in range(3):  # p ~ 0: every sample equals the deterministic model
        torch.testing.assert_close(pred.samples[:, t], F.softmax(model(x), -1), rtol=1e-5, atol=1e-6)


def test_dropconnect_masks_are_independent_per_sample():
    torch.manual_seed(0)
    layer = nn.Linear(10, 3)
    model = nn.Sequential(layer).eval()
    x = torch.randn(2, 10)
    mc = bd.wrap(model, task="regression", method="dropconnect", p=0.5)
    pred = mc.predict(x, samples=4000, seed=3, keep_samples=True)
    samples = pred.samples  # (B, T, 3)
    assert samples.std(1).min() > 0.1  # replicated samples differ
    # Unbiased: E over masks of x @ (W * M / (1 - p)).T + b is the deterministic output.
    expected_std = ((x**2) @ (layer.weight.T**2)).sqrt() / 4000**0.5  # p=0.5: Var = sum x^2 w^2
    assert ((pred.mean - model(x)).abs() < 5 * expected_std + 1e-4).all()
    # Neighbouring samples are uncorrelated.
    a, b = samples[0, :-1, 0], samples[0, 1:, 0]
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 0.1


def test_dropout_rate_and_scaling_are_right():
    model = nn.Sequential(nn.Dropout(0.3)).eval()
    mc = bd.wrap(model, task="regression")
    pred = mc.predict(torch.ones(1, 1000), samples=50, seed=0, keep_samples=True)
    values = pred.samples
    zero_fraction = (values == 0).float().mean().item()
    assert abs(zero_fraction - 0.3) < 0.01
    torch.testing.assert_close(values[values != 0], torch.full_like(values[values != 0], 1 / 0.7))


def test_gaussian_noise_has_variance_p_over_1_minus_p():
    model = nn.Sequential(nn.Dropout(0.2)).eval()
    pred = bd.wrap(model, task="regression", method="gaussian").predict(
        torch.ones(1, 2000), samples=20, seed=0, keep_samples=True
    )
    values = pred.samples.flatten()
    assert abs(values.mean().item() - 1) < 0.01
    assert abs(values.var().item() - 0.25) < 0.01


def test_alpha_dropout_matches_torch_statistics():
    x = torch.randn(1, 20000)
    pred = bd.wrap(nn.Sequential(nn.AlphaDropout(0.2)).eval(), task="regression").predict(
        x, samples=10, seed=0, keep_samples=True
    )
    ours = pred.samples.flatten()
    torch_out = F.alpha_dropout(x.repeat(10, 1), 0.2, training=True).flatten()
    assert abs(ours.mean() - torch_out.mean()) < 0.02 and abs(ours.std() - torch_out.std()) < 0.02
    assert set(ours[x.repeat(10, 1).flatten() != ours].round(decimals=4).tolist()[:1])  # some units dropped


def test_training_through_the_wrapper_is_training_the_model():
    model = ConvBN()
    mc = bd.wrap(model)
    mc.train()
    torch.manual_seed(5)
    out_wrapper = mc(IMAGES)
    torch.manual_seed(5)
    out_model = copy.deepcopy(model)(IMAGES)
    torch.testing.assert_close(out_wrapper, out_model)
    out_wrapper.sum().backward()
    assert model.fc1.weight.grad is not None
    mc.eval()
    torch.testing.assert_close(mc(IMAGES), model(IMAGES))


def test_dropconnect_training_forward_is_stochastic_and_trains():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    mc = bd.wrap(model, method="dropconnect", p=0.5).train()
    x = torch.randn(3, 4)
    a, b = mc(x), mc(x)
    assert not torch.equal(a, b)
    a.sum().backward()
    assert model[0].weight.grad.abs().sum() > 0
    mc.eval()
    assert torch.equal(mc(x), model(x))


def test_concrete_dropout_learns_rate_and_is_sampled():
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), bd.ConcreteDropout(nn.Linear(16, 1), init_p=0.2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    for _ in range(5):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y) + bd.concrete_regularization(model)
        loss.backward()
        assert model[2].p_logit.grad is not None and model[2].p_logit.grad != 0
        optimizer.step()
    mc = bd.wrap(model.eval(), task="regression")
    pred = mc.predict(x[:4], samples=20, seed=0)
    learned = model[2].p.item()
    assert learned != pytest.approx(0.2) and [s.p for s in mc.sites] == pytest.approx([learned])
    assert (pred.epistemic > 0).all()


def test_grad_path_keeps_gradients_and_default_does_not():
    model = ConvBN().eval()
    x = IMAGES.clone().requires_grad_(True)
    mc = bd.wrap(model)
    pred = mc.predict(x, samples=8, seed=0, grad=True)
    pred.total.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not mc.predict(x, samples=8, seed=0).mean.requires_grad


# -- errors -------------------------------------------------------------------------------------


def test_nothing_stochastic_is_an_error_naming_p():
    with pytest.raises(bd.BayesdropError, match="nothing stochastic.*`p`"):
        bd.wrap(NoDropout())


def test_nothing_stochastic_untraceable_model_errors_on_predict():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > -1e9 else x

    mc = bd.wrap(Plain())
    with pytest.raises(bd.BayesdropError, match="nothing stochastic"):
        mc.predict(torch.randn(2, 2))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), "0.5"])
def test_bad_p(p):
    with pytest.raises(bd.BayesdropError, match=r"argument `p` to be a float in \[0, 1\)"):
        bd.wrap(ConvBN(), p=p)


@pytest.mark.parametrize("samples", [0, -3, 2.5, True])
def test_bad_samples(samples):
    with pytest.raises(bd.BayesdropError, match="argument `samples`"):
        bd.wrap(ConvBN()).predict(IMAGES, samples=samples)


def test_unknown_method_task_output_and_layer():
    with pytest.raises(bd.BayesdropError, match="argument `method`.*'dropconnect'.*but got 'bernoulli'"):
        bd.wrap(ConvBN(), method="bernoulli")
    with pytest.raises(bd.BayesdropError, match="argument `task`"):
        bd.wrap(ConvBN(), task="segmentation")
    with pytest.raises(bd.BayesdropError, match="argument `output`"):
        bd.wrap(ConvBN(), task="regression", output="logits")
    with pytest.raises(bd.BayesdropError, match="argument `layers`.*fc1, fc2.*but got 'fc9'"):
        bd.wrap(ConvBN(), method="dropconnect", p=0.2, layers=["fc9"])
    with pytest.raises(bd.BayesdropError, match="argument `p`"):
        bd.wrap(ConvBN(), method="dropconnect")


def test_input_the_model_rejects_names_x_and_the_shape():
    mc = bd.wrap(ConvBN().eval())
    with pytest.raises(bd.BayesdropError, match=r"`x`.*ConvBN.*\(2, 3, 8, 8\)"):
        mc.predict(torch.randn(2, 3, 8, 8))


def test_samples_without_keep_samples_is_an_error():
    pred = bd.wrap(ConvBN().eval()).predict(IMAGES, samples=2)
    with pytest.raises(bd.BayesdropError, match="keep_samples=True"):
        _ = pred.samples


def test_regression_target_without_tau_is_an_error():
    mc = bd.wrap(nn.Sequential(nn.Linear(2, 1), nn.Dropout(0.1)), task="regression")
    with pytest.raises(bd.BayesdropError, match="argument `tau`"):
        mc.predict(torch.randn(3, 2), target=torch.randn(3, 1))


def test_gaussian_head_regression_mixture():
    model = GaussianHead().eval()
    mc = bd.wrap(model, task="regression", output="mean_var")
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    pred = mc.predict(x, samples=64, seed=0, keep_samples=True, target=y)
    mean, aleatoric, epistemic = bd.uncertainty.mixture_moments(pred.samples, pred.sample_variances)
    torch.testing.assert_close(pred.mean, mean)
    torch.testing.assert_close(pred.aleatoric, aleatoric)
    torch.testing.assert_close(pred.epistemic, epistemic)
    torch.testing.assert_close(pred.total, aleatoric + epistemic)
    dist = torch.distributions.Normal(pred.samples, pred.sample_variances.sqrt())
    direct = torch.logsumexp(dist.log_prob(y[:, None]).sum(-1), 1) - torch.log(torch.tensor(64.0))
    torch.testing.assert_close(pred.log_likelihood, direct)


def test_gaussian_training_forward_with_p_only_perturbs_dropout_sites():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))
    mc = bd.wrap(model, method="gaussian", p=0.2).train()
    x = torch.randn(3, 4)
    mc(x)
    active = mc.active_sites
    assert [s.function for s in active] == ["dropout"]  # not the Linear inputs
    assert not torch.equal(mc(x), mc(x))


class _TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)

    def forward(self, x):
        h = self.fc(x)
        return h, h * 2.0  # the second output is read only through its shape


class _ReadsSecondOutput(nn.Module):
    def __init__(self, read_shape: bool):
        super().__init__()
        self.encoder, self.drop, self.head = _TwoOutputs(), nn.Dropout(0.3), nn.Linear(8, 2)
        self.read_shape = read_shape

    def forward(self, x):
        if x.sum() > 1e9:  # torch.fx cannot trace this
            return x
        h, second = self.encoder(x)
        rows = second.shape[0] if self.read_shape else h.shape[0]  # a batch size read off a tensor
        return self.head(self.drop(h)).reshape(rows, 2)


@pytest.mark.parametrize("read_shape", [True, False])
def test_prefix_outputs_nothing_reads_are_not_replicated(read_shape):
    model = _ReadsSecondOutput(read_shape).eval()
    mc = bd.wrap(model)
    x = torch.randn(3, 4)
    got = mc.predict(x, samples=6, seed=0, keep_samples=True, chunk_size=2)
    route = mc._runtime.route
    # Reading a shape is a torch operation too: that output must be (and is) replicated.
    assert route.kind == "modules" and route.used == {("encoder", 0): (True, read_shape)}
    full = bd.wrap(model)
    full.predict(x, samples=1)
    force_full_replication(full)
    torch.testing.assert_close(got.samples, full.predict(x, samples=6, seed=0, keep_samples=True).samples)
