"""Consistent sampling: sample t is one sub-network for every input row, whatever the batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import bayesdrop as bd
from _models import Attention, ConvBN, Functional, Untraceable, all_dropout_modules, force_full_replication
from bayesdrop.models import GalCNN, LeNet5

_CASES = {
    "lenet dropout": (lambda: LeNet5(input_size=28, dropout=0.3), {}, (1, 28, 28)),
    "lenet dropconnect": (lambda: LeNet5(input_size=28, dropout=0.3), {"method": "dropconnect", "p": 0.2}, (1, 28, 28)),
    "lenet gaussian": (lambda: LeNet5(input_size=28, dropout=0.3), {"method": "gaussian"}, (1, 28, 28)),
    "conv bn, channel dropout": (ConvBN, {}, (1, 8, 8)),
    "functional, alpha dropout": (Functional, {}, (6,)),
    "attention": (Attention, {}, (5, 8)),
    "untraceable (full replication)": (Untraceable, {}, (4,)),
    "every dropout module": (all_dropout_modules, {}, (2, 8, 8)),
    "concrete dropout": (lambda: nn.Sequential(nn.Linear(4, 16), bd.ConcreteDropout(), nn.Linear(16, 3)), {}, (4,)),
}


def _setup(name):
    make, options, row = _CASES[name]
    torch.manual_seed(0)
    model = make().eval()
    return model, options, row


@pytest.mark.parametrize("name", list(_CASES))
def test_a_row_gets_the_same_samples_in_any_batch_and_order(name):
    model, options, row = _setup(name)
    x = torch.randn(7, *row)
    mc = bd.wrap(model, **options)
    whole = mc.predict(x, samples=9, seed=3, keep_samples=True, consistent=True).samples
    order = torch.tensor([5, 0, 6, 2, 1, 4, 3])
    shuffled = mc.predict(x[order], samples=9, seed=3, keep_samples=True, consistent=True).samples
    alone = mc.predict(x[4:5], samples=9, seed=3, keep_samples=True, consistent=True, chunk_size=2).samples
    assert torch.allclose(shuffled, whole[order], rtol=1e-5, atol=1e-6)
    assert torch.allclose(alone[0], whole[4], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lenet dropout", "lenet dropconnect", "lenet gaussian", "attention"])
def test_identical_rows_give_identical_samples_only_when_consistent(name):
    model, options, row = _setup(name)
    x = torch.randn(1, *row).expand(4, *row).contiguous()
    mc = bd.wrap(model, **options)
    same = mc.predict(x, samples=6, seed=1, keep_samples=True, consistent=True).samples
    assert torch.allclose(same, same[:1].expand_as(same), rtol=1e-5, atol=1e-6)
    assert same.std(1).max() > 1e-4  # and the samples still differ from each other
    independent = mc.predict(x, samples=6, seed=1, keep_samples=True).samples
    if options.get("method") != "dropconnect":  # DropConnect draws one weight mask per sample anyway
        assert (independent - independent[:1]).abs().max() > 1e-4


def test_loader_batches_share_the_sub_networks():
    model, options, row = _setup("lenet dropout")
    x = torch.randn(10, *row)
    mc = bd.wrap(model)
    direct = mc.predict(x, samples=5, seed=8, keep_samples=True, consistent=True).samples
    loader = DataLoader(TensorDataset(x), batch_size=3)
    through = mc.predict_loader(loader, samples=5, seed=8, keep_samples=True, consistent=True).samples
    assert torch.allclose(through, direct, rtol=1e-5, atol=1e-6)
    # seed=None: one seed drawn for the whole loader, so one row repeated over batches agrees
    same_row = DataLoader(TensorDataset(x[:1].expand(7, *row).contiguous()), batch_size=3)
    unseeded = mc.predict_loader(same_row, samples=5, seed=None, keep_samples=True, consistent=True).samples
    assert torch.allclose(unseeded, unseeded[:1].expand_as(unseeded), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 4, None])
def test_consistent_samples_do_not_depend_on_the_chunking(chunk):
    model, options, row = _setup("conv bn, channel dropout")
    x = torch.randn(6, *row)
    mc = bd.wrap(model)
    reference = mc.predict(x, samples=10, seed=2, keep_samples=True, consistent=True, chunk_size=10).samples
    chunked = mc.predict(x, samples=10, seed=2, keep_samples=True, consistent=True, chunk_size=chunk).samples
    assert torch.allclose(chunked, reference, rtol=1e-5, atol=1e-6)


def test_consistent_must_be_a_bool():
    mc = bd.wrap(LeNet5(input_size=28).eval())
    with pytest.raises(ValueError, match="consistent"):
        mc.predict(torch.randn(2, 1, 28, 28), samples=2, consistent="yes")


class _FunctionalHead(nn.Module):
    """``F.dropout`` then ``F.linear`` on a cached value, a Linear without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(6, 12)
        self.head = nn.Parameter(torch.randn(4, 12) / 4)

    def forward(self, x):
        return F.linear(F.dropout(torch.tanh(self.trunk(x)), 0.3, True), self.head)


class _SequenceHead(_FunctionalHead):
    """The same on (B, L, in) rows: the masks vary along L, so they are not a weight's."""

    def forward(self, x):
        return super().forward(x).mean(1)


class _Residual(nn.Module):
    """The dropout's input is read again: replicated, folded per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk, self.head = nn.Linear(5, 8), nn.Linear(8, 8)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        h = torch.relu(self.trunk(x))
        return self.head(self.drop(h)) + h


_FOLD_CASES = {
    "every hidden layer": (
        lambda: nn.Sequential(
            nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.4), nn.Linear(16, 3),
        ),
        {}, (5,), True,
    ),
    "before the output layer, gaussian": (
        lambda: nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 3)),
        {"method": "gaussian"}, (5,), True,
    ),
    "low rate: only the dropped units' part per sample": (
        lambda: nn.Sequential(nn.Linear(5, 128), nn.Tanh(), nn.Dropout(0.05), nn.Linear(128, 128), nn.ReLU(),
                              nn.Dropout(0.05), nn.Linear(128, 2)),
        {}, (5,), True,
    ),
    "a rate so low that no unit drops": (
        lambda: nn.Sequential(nn.Linear(5, 64), nn.ReLU(), nn.Dropout(1e-4), nn.Linear(64, 64), nn.Linear(64, 2)),
        {}, (5,), True,
    ),
    "functional, no bias": (_FunctionalHead, {}, (6,), True),
    "3-d rows: not folded": (_SequenceHead, {}, (3, 6), False),
    "residual": (_Residual, {"task": "regression", "tau": 1.0}, (5,), True),
    "Gal CNN: dropout -> flatten -> Linear": (lambda: GalCNN(filters=4, hidden=16), {}, (1, 28, 28), True),
}  # fmt: skip


@pytest.mark.parametrize("name", list(_FOLD_CASES))
def test_folding_dropout_into_the_next_linear_changes_nothing_but_the_cost(name):
    make, options, row, folds = _FOLD_CASES[name]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(9, *row)
    mc, reference = bd.wrap(model, **options), bd.wrap(model, **options)
    got = mc.predict(x, samples=12, seed=4, keep_samples=True, consistent=True, chunk_size=5)
    assert ("folds" in mc.describe()) is folds
    reference.predict(x[:2], samples=2)
    force_full_replication(reference)
    want = reference.predict(x, samples=12, seed=4, keep_samples=True, consistent=True)
    assert torch.allclose(got.samples, want.samples, rtol=1e-5, atol=1e-6)
    # gradients through the samples, as CLUE takes them
    grads = []
    for wrapper in (mc, reference):
        inputs = x.clone().requires_grad_(True)
        wrapper.predict(inputs, samples=6, seed=1, consistent=True, grad=True).total.sum().backward()
        grads.append(inputs.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    # independent sampling keeps the plain tail
    plain = mc.predict(x, samples=12, seed=4, keep_samples=True).samples
    assert torch.allclose(plain, reference.predict(x, samples=12, seed=4, keep_samples=True).samples, atol=1e-6)


def test_a_folded_dropout_reads_the_modules_rate_when_sampling():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)).eval()
    x = torch.randn(6, 5)
    mc, reference = bd.wrap(model), bd.wrap(model)
    mc.predict(x, samples=2, consistent=True)
    reference.predict(x[:2], samples=2)
    force_full_replication(reference)
    model[2].p = 0.6  # changed after the fold was built
    got = mc.predict(x, samples=8, seed=3, keep_samples=True, consistent=True).samples
    want = reference.predict(x, samples=8, seed=3, keep_samples=True, consistent=True).samples
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shared", [True, False])
def test_a_fold_given_rows_it_was_not_built_for_samples_the_plain_way(shared):
    from bayesdrop._sites import CounterNoise, Method, SitePlan, StochasticMode, folded_dropout_linear

    torch.manual_seed(0)
    weight, bias, x = torch.randn(4, 6), torch.randn(4), torch.randn(3, 5, 6)  # 3-d rows
    plan = SitePlan(Method.DROPOUT)
    with StochasticMode(plan, CounterNoise(1, 0, 0, 2, consistent=True)):
        got = folded_dropout_linear(x if shared else x.repeat(2, 1, 1), 0.3, weight, bias, shared)
    with StochasticMode(plan, CounterNoise(1, 0, 0, 2, consistent=True)):
        want = F.linear(F.dropout(x.repeat(2, 1, 1), 0.3), weight, bias)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
