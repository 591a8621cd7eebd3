"""Parameter and FLOP counts against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bayesdrop import BayesdropError
from bayesdrop.metrics import count_flops, count_parameters, mc_flops


def test_count_parameters() -> None:
    net = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))
    assert count_parameters(net) == 10 * 5 + 5 + 5 * 2 + 2
    net[0].weight.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 5 + 5 * 2 + 2
    shared = nn.Linear(3, 3)
    assert count_parameters(nn.Sequential(shared, shared)) == 12  # shared weights once


def test_count_flops_hand_checked() -> None:
    # Linear: 2 * B * in * out (multiply-adds); bias and ReLU are not counted by torch.
    net = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 2))
    assert count_flops(net, torch.zeros(3, 10)) == 2 * 3 * (10 * 5 + 5 * 2)
    # Conv2d 1 -> 4 channels, 3x3 kernel, 8x8 input, no padding: 6x6 outputs.
    conv = nn.Conv2d(1, 4, 3)
    assert count_flops(conv, torch.zeros(2, 1, 8, 8)) == 2 * 2 * 4 * 6 * 6 * 9
    assert mc_flops(count_flops(conv, torch.zeros(1, 1, 8, 8)), 100) == 100 * 2 * 4 * 6 * 6 * 9


def test_count_flops_keeps_the_training_mode() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    net.train()
    count_flops(net, torch.zeros(1, 4))
    assert net.training


def test_bad_inputs() -> None:
    with pytest.raises(BayesdropError, match=r"`model` to be a torch.nn.Module"):
        count_parameters("net")
    with pytest.raises(BayesdropError, match=r"`model` to be a torch.nn.Module"):
        count_flops(lambda x: x, torch.zeros(1))
    with pytest.raises(BayesdropError, match=r"`n_samples` to be a positive integer"):
        mc_flops(10, 0)
    with pytest.raises(BayesdropError, match=r"`flops_per_forward` to be a non-negative"):
        mc_flops(-1, 3)
