"""Shared fixtures: where the project's shared data lives, and fixed seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BAYESDROP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder `../shared/data` (UCI splits, MNIST test set, CO2); skips if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set BAYESDROP_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
