"""The pool and the resumable active-learning loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import bayesdrop as bd
from bayesdrop import active, training
from bayesdrop.active import LoopConfig, Pool, run_loop


def test_pool_labels_by_index_and_round_and_round_trips():
    pool = Pool(12, excluded=[0, 1])
    pool.label([5, 3], round=0)
    pool.label([7], round=1)
    assert pool.labelled.tolist() == [3, 5, 7] and pool.labelled_in(1).tolist() == [7]
    assert 0 not in pool.unlabelled and len(pool.unlabelled) == 7
    with pytest.raises(bd.BayesdropError, match="already taken"):
        pool.label([5], round=2)
    with pytest.raises(bd.BayesdropError, match="indices"):
        pool.label([12], round=2)
    again = Pool.from_state_dict(json.loads(json.dumps(pool.state_dict())))
    assert again.labelled.tolist() == pool.labelled.tolist() and again.unlabelled.tolist() == pool.unlabelled.tolist()


def test_balanced_initial_labels_and_seeded_subsets():
    targets = np.repeat(np.arange(4), 25)
    pool = Pool(100, excluded=range(0, 100, 10))
    first = pool.balanced_initial(targets, per_class=3, seed=1)
    assert np.bincount(targets[first], minlength=4).tolist() == [3, 3, 3, 3]
    assert not set(first) & set(range(0, 100, 10))
    assert first.tolist() == pool.balanced_initial(targets, per_class=3, seed=1).tolist()
    subset = pool.random_unlabelled(20, seed=2)
    assert len(set(subset)) == 20 and subset.tolist() == pool.random_unlabelled(20, seed=2).tolist()
    with pytest.raises(bd.BayesdropError, match="per_class"):
        pool.balanced_initial(targets, per_class=30, seed=0)


def _blobs(n=240, seed=0):
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    return centres[y] + torch.randn(n, 2, generator=generator), y


def _model():
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))


def _train(mc, train_data, val_data, seed):
    """A small deterministic step: full-batch Adam under the round's seed."""
    x, y = train_data.tensors
    with training.seeded(seed):
        optimiser = torch.optim.Adam(mc.parameters(), lr=0.05)
        mc.train()
        for _ in range(30):
            optimiser.zero_grad()
            nn.functional.cross_entropy(mc(x), y).backward()
            optimiser.step()
        mc.eval()


def _evaluate_on(x, y):
    def evaluate(mc, seed):
        pred = mc.predict(x, samples=10, seed=seed)
        return {"accuracy": float((pred.mean.argmax(-1) == y).double().mean())}

    return evaluate


_CONFIG = {"acquire": 4, "initial_per_class": 2, "budget": 18, "pool_subset": 60, "samples": 8, "seed": 3}


@pytest.mark.parametrize("heuristic", [h.value for h in active.Heuristic])
def test_every_heuristic_runs_a_round_and_labels_new_items(tmp_path, heuristic):
    x, y = _blobs()
    config = LoopConfig(heuristic=heuristic, **{**_CONFIG, "budget": 10, "batchbald_samples": 200, "epig_targets": 20})
    rounds = run_loop(_model, x, y, config, tmp_path / "state.json", _train, validation=range(200, 240))
    assert [r.labels for r in rounds] == [6, 10] and rounds[-1].acquired == []
    acquired = rounds[0].acquired
    assert len(set(acquired)) == 4 and not set(acquired) & set(range(200, 240))


def _run_and_die(path, after_round):
    x, y = _blobs()

    def die(record):
        if record.round == after_round:
            os.kill(os.getpid(), signal.SIGKILL)

    run_loop(
        _model, x, y, LoopConfig(**_CONFIG), path, _train, _evaluate_on(x, y), validation=range(200, 240), on_round=die
    )


def test_a_killed_run_resumes_after_its_last_round_with_the_same_choices(tmp_path):
    x, y = _blobs()
    whole = run_loop(
        _model, x, y, LoopConfig(**_CONFIG), tmp_path / "whole.json", _train, _evaluate_on(x, y), range(200, 240)
    )
    assert [r.labels for r in whole] == [6, 10, 14, 18]
    killed = tmp_path / "killed.json"
    # a separate process (torch's OpenMP pool is not fork-safe), killed by SIGKILL after round 1
    code = f"import test_active_loop as t; t._run_and_die({str(killed)!r}, 1)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    saved = json.loads(killed.read_text())
    assert len(saved["rounds"]) == 2  # rounds 0 and 1 were written before the kill
    resumed = run_loop(_model, x, y, LoopConfig(**_CONFIG), killed, _train, _evaluate_on(x, y), range(200, 240))
    assert [r.acquired for r in resumed] == [r.acquired for r in whole]
    assert [r.metrics for r in resumed] == [r.metrics for r in whole]


def test_a_state_file_of_another_run_is_refused(tmp_path):
    x, y = _blobs()
    path = tmp_path / "state.json"
    run_loop(_model, x, y, LoopConfig(**{**_CONFIG, "budget": 6}), path, _train)
    with pytest.raises(bd.BayesdropError, match="state_path"):
        run_loop(_model, x, y, LoopConfig(**{**_CONFIG, "budget": 10}), path, _train)


def test_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="bold"):
        LoopConfig(heuristic="bold")
    with pytest.raises(bd.BayesdropError, match="acquire"):
        LoopConfig(acquire=0)
