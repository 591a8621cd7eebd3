"""Ordinary Python habits must not give silent wrong answers: copies, pickles, re-loaded weights,
settings, threads, forked workers, fallbacks, variable input shapes."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import threading
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bayesdrop as bd
from _models import Attention, ConvBN, NoDropout

IMAGES = torch.randn(6, 1, 8, 8)


def _wrapped(kind: str) -> tuple[bd.MCModel, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "dropconnect":
        return bd.wrap(ConvBN().eval(), method="dropconnect", p=0.3), IMAGES
    if kind == "added dropout":  # a model without dropout, given p: dropout before its last layer
        return bd.wrap(NoDropout().eval(), p=0.3), torch.randn(5, 4)
    return bd.wrap(ConvBN().eval()), IMAGES


COPIES = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda mc: pickle.loads(pickle.dumps(mc)),
}


@pytest.mark.parametrize("kind", ["dropconnect", "added dropout", "dropout"])
@pytest.mark.parametrize("how", sorted(COPIES))
def test_copies_sample_like_the_original(kind, how):
    mc, x = _wrapped(kind)
    before = mc.predict(x, samples=20, seed=3, keep_samples=True)
    copied = COPIES[how](mc)
    assert copied.model is not mc.model
    after = copied.predict(x, samples=20, seed=3, keep_samples=True)
    assert float(after.epistemic.min()) > 1e-4  # still stochastic (was ~1e-8: silently deterministic)
    torch.testing.assert_close(after.samples, before.samples)


@pytest.mark.parametrize("kind", ["dropconnect", "added dropout"])
def test_copy_of_an_unprobed_wrapper_and_reloaded_weights(kind):
    mc, x = _wrapped(kind)
    copied = copy.deepcopy(mc)  # before the first predict
    reference = mc.predict(x, samples=10, seed=1, keep_samples=True)
    torch.testing.assert_close(copied.predict(x, samples=10, seed=1, keep_samples=True).samples, reference.samples)
    # load_state_dict(assign=True) replaces every weight tensor by a new object
    state = {k: v.clone() for k, v in mc.model.state_dict().items()}
    mc.model.load_state_dict(state, assign=True)
    reloaded = mc.predict(x, samples=10, seed=1, keep_samples=True)
    assert float(reloaded.epistemic.min()) > 1e-4
    torch.testing.assert_close(reloaded.samples, reference.samples)


def test_settings_are_read_only_and_with_options_makes_a_new_wrapper():
    mc = bd.wrap(ConvBN().eval())
    for name, value in [("p", 0.05), ("method", "gaussian"), ("last_layer", True), ("task", "regression")]:
        with pytest.raises(AttributeError, match=f"MCModel.{name} is fixed.*with_options"):
            setattr(mc, name, value)
    other = mc.with_options(p=0.05)
    assert other.model is mc.model and other.p == 0.05 and mc.p is None
    other.predict(IMAGES, samples=2)
    assert {s.p for s in other.active_sites} == {0.05}
    with pytest.raises(bd.BayesdropError, match="with_options"):
        mc.with_options(rate=0.1)
    reg = bd.wrap(nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.1), nn.Linear(8, 1)).eval(), task="regression")
    reg.tau = 4.0  # tau is live: fit_tau sets it
    assert reg.predict(torch.randn(4, 3), samples=3).aleatoric.eq(0.25).all()
    with pytest.raises(bd.BayesdropError, match="`tau`"):
        reg.tau = -1.0


def test_p_overrides_the_rate_in_training_too():
    model = nn.Sequential(nn.Dropout(0.5)).train()
    mc = bd.wrap(model, task="regression", p=0.1)
    mc.train()
    x = torch.ones(200, 500)
    dropped = float((mc(x) == 0).float().mean())
    assert abs(dropped - 0.1) < 0.01  # was 0.5: the model's own rate in training
    pred = mc.predict(torch.ones(4, 1000), samples=50, seed=0, keep_samples=True)
    assert abs(float((pred.samples == 0).float().mean()) - 0.1) < 0.01


def test_another_thread_calling_dropout_is_never_affected():
    """The attention path used to swap torch.nn.functional.dropout process-wide during a call."""
    model = Attention().eval()
    mc = bd.wrap(model)
    x = torch.randn(3, 4, 8)
    mc.predict(x, samples=4)
    original = F.dropout
    probe = torch.randn(64, 64)
    problems: list[str] = []
    stop = threading.Event()

    def other_thread():
        while not stop.is_set():
            try:
                if F.dropout is not original:
                    problems.append("F.dropout replaced")
                if not torch.equal(F.dropout(probe, 0.5, training=False), probe):
                    problems.append("changed values")
            except Exception as error:  # noqa: BLE001
                problems.append(repr(error))

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        for seed in range(40):
            mc.predict(x, samples=8, seed=seed)
    finally:
        stop.set()
        thread.join()
    assert problems == []


def test_concurrent_predicts_on_one_wrapper_equal_sequential_ones():
    mc = bd.wrap(ConvBN().eval())
    inputs = [torch.randn(5, 1, 8, 8) for _ in range(6)]
    expected = [None] * 6
    results: list = [None] * 6
    fresh = bd.wrap(copy.deepcopy(mc.model))
    for i, x in enumerate(inputs):
        expected[i] = fresh.predict(x, samples=16, seed=i, keep_samples=True).samples
    threads = [
        threading.Thread(
            target=lambda i=i: results.__setitem__(i, mc.predict(inputs[i], samples=16, seed=i, keep_samples=True))
        )
        for i in range(6)
    ]  # the first probe races too: nothing was probed before
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected, strict=True):
        torch.testing.assert_close(got.samples, want)
    assert all(not m.training for m in mc.model.modules())  # flags restored


def _child_predict(queue) -> None:
    torch.set_num_threads(1)  # as DataLoader workers do: torch's own OpenMP pool is not fork-safe
    model = nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.5), nn.Linear(64, 2)).eval()
    pred = bd.wrap(model).predict(torch.randn(512, 64), samples=200, seed=0)
    queue.put(float(pred.epistemic.mean()))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_samples_after_the_parent_drew_large_masks():
    # Large enough for the parallel mask path (its worker threads do not exist in the child).
    model = nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.5), nn.Linear(64, 2)).eval()
    bd.wrap(model).predict(torch.randn(512, 64), samples=200, seed=0)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_predict, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung")
    assert child.exitcode == 0 and queue.get(timeout=5) > 0


def test_point_regression_without_tau_says_aleatoric_is_zero_and_loader_targets_are_not_scored():
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1)).eval()
    mc = bd.wrap(model, task="regression")
    with pytest.warns(bd.BayesdropWarning, match="aleatoric uncertainty 0"):
        pred = mc.predict(torch.randn(4, 3), samples=5)
    assert pred.aleatoric.eq(0).all()
    with pytest.raises(bd.BayesdropError, match="`tau`"):
        mc.predict(torch.randn(4, 3), samples=5, target=torch.randn(4, 1))
    loader = [(torch.randn(4, 3), torch.randn(4, 1))]
    with pytest.warns(bd.BayesdropWarning, match="targets are not scored"):
        assert mc.predict_loader(loader, samples=5).log_likelihood is None
    mc.tau = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mc.predict_loader(loader, samples=5).log_likelihood.shape == (4,)


def test_chunk_size_memory_is_bounded_with_variable_sequence_lengths():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 2)).eval()
    mc = bd.wrap(model, task="regression", tau=1.0)
    for length in range(1, 201):
        mc.predict(torch.randn(2, length, 8), samples=2, seed=0)
    assert len(mc._runtime.bytes_per_row) <= 64


def test_predict_leaves_the_callers_state_alone():
    model = ConvBN().eval()
    model.drop.train()  # the user's own flags, whatever they are
    flags = {name: m.training for name, m in model.named_modules()}
    rng = torch.get_rng_state()
    mc = bd.wrap(model)
    mc.predict(IMAGES, samples=8, seed=0)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert torch.equal(torch.get_rng_state(), rng)
    assert all("forward" not in m.__dict__ for m in model.modules())  # no leftover overrides


@pytest.mark.parametrize("make", [ConvBN, Attention])
def test_a_zero_rate_override_is_deterministic_and_draws_nothing_from_torch(make):
    """p=0 switches every site off: the model's own dropout (training flag on while sampling)
    must not run either, and torch's global generator must not move."""
    torch.manual_seed(0)
    model = make().eval()
    x = IMAGES if make is ConvBN else torch.randn(3, 4, 8)
    rng = torch.get_rng_state()
    pred = bd.wrap(model, p=0.0).predict(x, samples=4, seed=0, keep_samples=True)
    assert torch.equal(torch.get_rng_state(), rng)
    # every sample is the same deterministic prediction (for ConvBN: its eval-mode forward; the
    # Attention model calls scaled_dot_product_attention(dropout_p=0.3) even in eval mode)
    torch.testing.assert_close(pred.samples, pred.samples[:, :1].expand_as(pred.samples))
    assert float(pred.epistemic.max()) < 1e-6
    if make is ConvBN:
        with torch.no_grad():
            torch.testing.assert_close(pred.samples[:, 0], torch.softmax(model(x), -1))
