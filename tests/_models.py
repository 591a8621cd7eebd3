"""Small models covering the ways randomness hides in a network (shared by the core tests)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBN(nn.Module):
    """Conv + BatchNorm trunk, channel dropout, then dropout between fully connected layers."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, stride=2)
        self.bn = nn.BatchNorm2d(4)
        self.drop2d = nn.Dropout2d(0.2)
        self.fc1 = nn.Linear(4 * 4 * 4, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(p)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        x = self.drop2d(F.relu(self.bn(self.conv(x))))
        x = F.relu(self.bn1(self.fc1(torch.flatten(x, 1))))
        return self.fc2(self.drop(x))


class Functional(nn.Module):
    """Functional dropout calls written the usual way, with training=self.training."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 12)
        self.fc2 = nn.Linear(12, 12)
        self.fc3 = nn.Linear(12, 4)

    def forward(self, x):
        x = F.dropout(x, 0.1, training=self.training)
        x = F.alpha_dropout(F.selu(self.fc1(x)), 0.2, training=self.training)
        x = F.dropout(F.relu(self.fc2(x)), p=0.3, training=self.training)
        return self.fc3(x)


class ReversedOrder(nn.Module):
    """Dropout modules registered in the opposite order to the one they run in."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Dropout(0.5)  # registered first, runs last
        self.early = nn.Dropout(0.5)
        self.fc1 = nn.Linear(5, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(self.late(F.relu(self.fc1(self.early(x)))))


class Attention(nn.Module):
    """nn.MultiheadAttention with dropout, then scaled_dot_product_attention with dropout_p."""

    def __init__(self, mha_p: float = 0.2, sdpa_p: float = 0.3) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, dropout=mha_p, batch_first=True)
        self.qkv = nn.Linear(8, 24)
        self.sdpa_p = sdpa_p
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x, _ = self.mha(x, x, x, need_weights=False)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.sdpa_p)
        return self.head(x.mean(1))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so the engine replicates fully."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.4)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        if h.sum() > -1e9:  # always true, but depends on data
            h = self.drop(h)
        return self.fc2(h)


class NoDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 3)  # registered first, runs last
        self.body = nn.Linear(4, 6)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


class GaussianHead(nn.Module):
    """Regression network returning (mean, variance)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.2))
        self.mean = nn.Linear(16, 2)
        self.var = nn.Linear(16, 2)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h), F.softplus(self.var(h)) + 1e-3


def all_dropout_modules() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.Dropout2d(0.2),
        nn.AlphaDropout(0.1),
        nn.FeatureAlphaDropout(0.1),
        nn.Flatten(1, 2),  # (B, 4*8, 8): a sequence for Dropout1d
        nn.Dropout1d(0.1),
        nn.Unflatten(1, (4, 8)),
        nn.Unflatten(1, (4, 1)),  # (B, 4, 1, 8, 8) for Dropout3d
        nn.Dropout3d(0.1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(256, 5),
    )


def force_full_replication(mc) -> None:
    """Make a probed wrapper replicate the whole model (the reference path of equality tests)."""
    from bayesdrop._wrap import _Route

    mc._runtime.route = _Route("full", "full replication: forced by a test")
