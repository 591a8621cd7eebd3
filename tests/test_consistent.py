"""Consistent sampling: sample t is one sub-network for every input row, whatever the batching."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import bayesdrop as bd
from _models import Attention, ConvBN, Functional, Untraceable, all_dropout_modules
from bayesdrop.models import LeNet5

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
