"""Training loops: prior weight decay, noise on in training, checkpoint/resume, early stopping,
Concrete dropout, regression heads, evaluation through the engine."""

from __future__ import annotations

import math
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

import bayesdrop as bd
from bayesdrop.training import (
    EpochStats,
    evaluate_model,
    fit,
    load_checkpoint,
    network,
    prior_weight_decay,
    resolve_device,
    save_checkpoint,
    seed_everything,
)


def _blobs(n: int = 240, d: int = 6, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=g) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g)
    return TensorDataset(x, y)


def _net(d: int = 6, classes: int = 3, p: float = 0.2) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, classes))


def _params(mc: nn.Module) -> list[torch.Tensor]:
    return [q.detach().clone() for q in network(mc).parameters()]


# ------------------------------------------------------------------------ prior weight decay
@settings(max_examples=50, deadline=None)
@given(scale=st.floats(1e-4, 10), p=st.floats(0, 0.99), n=st.integers(1, 10**6), tau=st.floats(1e-3, 1e3))
def test_prior_weight_decay_is_gal_formula(scale: float, p: float, n: int, tau: float) -> None:
    expected = scale * scale * (1 - p) / (2 * n * tau)
    assert prior_weight_decay(scale, p, n, tau) == pytest.approx(expected)


def test_prior_weight_decay_rejects_bad_arguments() -> None:
    with pytest.raises(bd.BayesdropError, match="`p` to be a float in \\[0, 1\\)"):
        prior_weight_decay(1.0, 1.0, 10)
    with pytest.raises(bd.BayesdropError, match="`n` to be a positive integer"):
        prior_weight_decay(1.0, 0.5, 0)
    with pytest.raises(bd.BayesdropError, match="`length_scale`"):
        prior_weight_decay(-1.0, 0.5, 10)


def test_length_scale_sets_coupled_weight_decay_of_twice_lambda() -> None:
    data = _blobs(64)
    lam = prior_weight_decay(0.5, 0.2, len(data), 0.1)
    a = bd.wrap(_net())
    fit(a, data, epochs=2, length_scale=0.5, p=0.2, tau=0.1, batch_size=16, lr=1e-2)
    b = bd.wrap(_net())
    fit(b, data, epochs=2, weight_decay=2 * lam, batch_size=16, lr=1e-2)
    c = bd.wrap(_net())
    fit(c, data, epochs=2, weight_decay=0.0, batch_size=16, lr=1e-2)
    assert all(torch.equal(u, v) for u, v in zip(_params(a), _params(b), strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(_params(a), _params(c), strict=True))


# ----------------------------------------------------------------------------------- loops
def test_fit_learns_and_reports_every_epoch() -> None:
    data, val = _blobs(240, seed=0), _blobs(90, seed=0)
    mc = bd.wrap(_net())
    seen = []
    hist = fit(mc, data, val_data=val, epochs=4, lr=1e-2, batch_size=32, callback=seen.append)
    assert [e.epoch for e in hist.epochs] == [1, 2, 3, 4] and seen == hist.epochs
    assert hist.epochs[-1].train_loss < hist.epochs[0].train_loss
    assert hist.epochs[-1].val_accuracy > 0.9  # well-separated blobs (centres 3 sd apart)
    ev = evaluate_model(mc, val, samples=20, seed=0)
    y = val.tensors[1]
    assert ev.metrics["accuracy"] == pytest.approx((ev.prediction.mean.argmax(1) == y).double().mean().item())
    assert ev.metrics["n_samples"] == 20 and ev.prediction.mean.shape == (90, 3)


@pytest.mark.parametrize("method", ["dropconnect", "gaussian"])
def test_training_through_wrapper_has_method_noise(method: str) -> None:
    net = _net(p=0.3)
    mc = bd.wrap(net, method=method, p=0.3)
    mc.train()
    x = torch.randn(5, 6)
    assert not torch.equal(mc(x), mc(x))  # the noise is on while training
    mc.eval()
    assert torch.equal(mc(x), mc(x))
    hist = fit(mc, _blobs(96), epochs=2, batch_size=32, lr=1e-2)
    assert math.isfinite(hist.epochs[-1].train_loss)


def test_checkpoint_resume_gives_the_same_weights(tmp_path) -> None:
    data, val = _blobs(200), _blobs(60, seed=1)
    kw = dict(val_data=val, batch_size=32, lr=1e-2, schedule="cosine", seed=3)
    straight = bd.wrap(_net())
    h1 = fit(straight, data, epochs=4, **kw)
    ckpt = tmp_path / "ck.pt"
    part = bd.wrap(_net())

    def kill_after_epoch_2(e) -> None:
        if e.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the process is "killed" after epoch 2
        fit(part, data, epochs=4, checkpoint=ckpt, callback=kill_after_epoch_2, **kw)
    resumed = bd.wrap(_net())  # a fresh process: new model, state from the checkpoint
    h2 = fit(resumed, data, epochs=4, checkpoint=ckpt, **kw)
    assert h2.resumed_from == 2 and len(h2.epochs) == 4
    assert all(torch.equal(u, v) for u, v in zip(_params(straight), _params(resumed), strict=True))
    assert [e.val_loss for e in h1.epochs] == [e.val_loss for e in h2.epochs]
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp file


def test_early_stopping_restores_the_best_epoch() -> None:
    g = torch.Generator().manual_seed(0)
    # random labels: the model can only overfit, so the validation loss rises
    train = TensorDataset(torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g))
    val = TensorDataset(torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g))
    mc = bd.wrap(_net(p=0.0), p=0.0)
    hist = fit(mc, train, val_data=val, epochs=40, patience=2, lr=3e-2, batch_size=16)
    assert hist.stopped_early and len(hist.epochs) < 40
    best = min(hist.epochs, key=lambda e: e.val_loss)
    assert hist.best_epoch == best.epoch
    assert len(hist.epochs) == best.epoch + 2  # stopped after `patience` worse epochs


def test_concrete_dropout_learns_its_rate() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 32),
        nn.ReLU(),
        bd.ConcreteDropout(nn.Linear(32, 3), init_p=0.3, weight_regularizer=1e-4, dropout_regularizer=1e-2),
    )
    mc = bd.wrap(net)
    hist = fit(mc, _blobs(120), epochs=3, lr=5e-2, batch_size=32)
    assert math.isfinite(hist.epochs[-1].train_loss)
    assert abs(net[2].p.item() - 0.3) > 1e-3  # the rate got gradients from the regulariser


def test_regression_with_variance_head() -> None:
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Dropout(0.1))
            self.mu, self.logvar = nn.Linear(32, 1), nn.Linear(32, 1)

        def forward(self, x):
            h = self.body(x)
            return self.mu(h), self.logvar(h)

    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, 128)[:, None]
    y = torch.sin(2 * x) + 0.1 * torch.randn(x.shape, generator=g)
    data = TensorDataset(x, y)
    mc = bd.wrap(Head(), task="regression", output="mean_logvar")
    hist = fit(mc, data, task="regression", val_data=data, epochs=30, lr=1e-2, batch_size=32)
    assert hist.epochs[-1].train_loss < hist.epochs[0].train_loss
    assert hist.epochs[-1].val_loss < 0.1  # MSE of the MC mean vs var(y) ~ 0.5


def test_fit_validates_arguments() -> None:
    mc = bd.wrap(_net())
    with pytest.raises(bd.BayesdropError, match="`optimizer` to be one of"):
        fit(mc, _blobs(8), optimizer="lbfgs")
    with pytest.raises(bd.BayesdropError, match="`schedule` to be one of"):
        fit(mc, _blobs(8), schedule="linear")
    with pytest.raises(bd.BayesdropError, match="needs a validation split"):
        fit(mc, _blobs(8), patience=2)
    with pytest.raises(bd.BayesdropError, match="`output` to be one of"):
        fit(mc, _blobs(8), task="regression", output="logits")


def test_checkpoint_helpers_and_devices(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "a" / "s.pt", {"x": torch.arange(3)})
    assert torch.equal(load_checkpoint(path)["x"], torch.arange(3))
    with pytest.raises(bd.BayesdropError, match="existing checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(bd.BayesdropError, match="Could not read checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(bd.BayesdropError, match="`device`"):
        resolve_device("tpu")
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))


# ------------------------------------------------------------------ checkpoints are plain data
def _write_marker(path: str) -> None:
    Path(path).write_text("unpickling ran code")


class _RunsCodeWhenUnpickled:
    """Unpickling this calls _write_marker(marker): what a tampered model.pt could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_write_marker, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "torch.save legacy format", "pickle.dump"])
def test_load_checkpoint_refuses_pickled_objects_and_runs_nothing(tmp_path, writer: str) -> None:
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_RunsCodeWhenUnpickled(probe)))  # the payload is live:
    assert probe.is_file()  # a plain unpickler runs it
    marker = tmp_path / "marker"
    state = {"model": {"w": torch.zeros(2)}, "extra": _RunsCodeWhenUnpickled(marker)}
    path = tmp_path / "model.pt"
    if writer == "torch.save":
        torch.save(state, path)
    elif writer == "torch.save legacy format":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    with pytest.raises(bd.BayesdropError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert repr(str(path)) in message  # names the file
    assert "holds something other than weights and plain data" in message
    assert "not loaded, for safety" in message
    assert "_write_marker" in message  # and what it refers to
    assert not marker.exists()


def test_save_checkpoint_refuses_what_load_checkpoint_cannot_read(tmp_path) -> None:
    stats = EpochStats(epoch=1, train_loss=0.5, lr=1e-3, seconds=0.1)
    with pytest.raises(bd.BayesdropError, match=r"type EpochStats at state\['history'\]\[0\]"):
        save_checkpoint(tmp_path / "s.pt", {"history": [stats]})
    with pytest.raises(bd.BayesdropError, match=r"type int64 at state\['n'\]"):
        save_checkpoint(tmp_path / "s.pt", {"n": np.int64(3)})
    assert not list(tmp_path.iterdir())  # nothing written
    plain = {"model": _net().state_dict(), "history": [stats.__dict__], "shape": torch.Size([2]), "none": None}
    assert load_checkpoint(save_checkpoint(tmp_path / "s.pt", plain))["history"] == [stats.__dict__]


@pytest.mark.parametrize(("optimizer", "schedule"), [("adam", "cosine"), ("sgd", "step")])
def test_fit_checkpoints_load_with_weights_only(tmp_path, optimizer: str, schedule: str) -> None:
    ckpt = tmp_path / "ck.pt"
    fit(bd.wrap(_net()), _blobs(64), val_data=_blobs(30, seed=1), epochs=2, batch_size=32,
        optimizer=optimizer, schedule=schedule, checkpoint=ckpt)  # fmt: skip
    state = torch.load(ckpt, weights_only=True)
    assert [e["epoch"] for e in state["history"]] == [1, 2] and state["best_state"] is not None
    again = fit(bd.wrap(_net()), _blobs(64), val_data=_blobs(30, seed=1), epochs=3, batch_size=32,
                optimizer=optimizer, schedule=schedule, checkpoint=ckpt)  # fmt: skip
    assert again.resumed_from == 2 and len(again.epochs) == 3


# ------------------------------------------------------------------ no process-wide side effects
def _global_states() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _assert_same_states(a: tuple, b: tuple) -> None:
    assert torch.equal(a[0], b[0]), "torch's global RNG state changed"
    assert a[1] == b[1], "Python's random state changed"
    assert a[2][0] == b[2][0] and np.array_equal(a[2][1], b[2][1]) and a[2][2:] == b[2][2:], "NumPy's state changed"


def test_fit_leaves_the_callers_global_random_state_alone() -> None:
    data, val = _blobs(96), _blobs(30, seed=1)
    mc, other = bd.wrap(_net(p=0.3)), bd.wrap(_net(p=0.3))  # (_net seeds the initialisation)
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    before = _global_states()
    fit(mc, data, val_data=val, epochs=2, batch_size=32, seed=4)
    _assert_same_states(before, _global_states())

    def stop(e) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # also when training ends with an exception
        fit(other, data, epochs=2, batch_size=32, callback=stop)
    _assert_same_states(before, _global_states())


def test_fit_repeats_its_numbers_from_its_seed_whatever_the_global_state() -> None:
    data = _blobs(96)

    def train(fit_seed: int, global_seed: int) -> list[torch.Tensor]:
        mc = bd.wrap(_net(p=0.3))
        torch.manual_seed(global_seed)  # the caller's global state differs between runs
        fit(mc, data, epochs=2, batch_size=32, lr=1e-2, seed=fit_seed)
        return _params(mc)

    reference = train(5, global_seed=1)
    assert all(torch.equal(u, v) for u, v in zip(reference, train(5, global_seed=2), strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(reference, train(6, global_seed=1), strict=True))


def test_fit_with_a_loss_callable_equals_the_built_in_loss_and_validates_with_it():
    import torch.nn.functional as F
    from torch.utils.data import TensorDataset

    import bayesdrop as bd
    from bayesdrop import training

    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 5, generator=generator), torch.randint(0, 3, (96,), generator=generator)

    def trained(**options):
        with training.seeded(0):
            net = torch.nn.Sequential(
                torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 3)
            )
        mc = bd.wrap(net)
        history = training.fit(mc, TensorDataset(x, y), epochs=3, batch_size=32, seed=1, **options)
        return net, history

    built_in, _ = trained()
    custom, _ = trained(loss=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]))
    for a, b in zip(built_in.state_dict().values(), custom.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # a model that is not a classifier: an autoencoder, validated with the same loss in eval mode
    auto = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Linear(3, 5))
    reconstruction = lambda model, batch: F.mse_loss(model(batch[0]), batch[0])  # noqa: E731
    history = training.fit(
        auto, TensorDataset(x), val_data=TensorDataset(x[:32]), epochs=30, lr=1e-2, loss=reconstruction, patience=5
    )
    with torch.no_grad():
        expected = F.mse_loss(auto(x[:32]), x[:32]).item()
    best = min(e.val_loss for e in history.epochs)
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert best == pytest.approx(expected, rel=1e-5)  # the best weights are restored
