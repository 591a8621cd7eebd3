"""Active-learning speed: BatchBALD vs batchbald_redux, and pool scoring vs baal, in one process.

Run: ``.venv/bin/python benchmarks/active.py`` (``--quick``: 2,000-point pools; ``--case
batchbald`` or ``--case pool`` for one). The peers are not dependencies; install them beside
the project's torch without their own pins:
``pip install --no-deps batchbald_redux==2.0.5 "toma<2" psutil baal==2.1.0 structlog torchmetrics lightning-utilities``.

Pool scoring (issue 9): BALD scores of 10,000 MNIST-sized images with K = 20 MC-dropout samples
of Gal et al.'s CNN (trained briefly on 1,000 test images so the scores mean something):
bayesdrop's ``predict_loader(..., consistent=True)`` + ``bald`` (running sums, O(N) memory) vs
baal 2.1's ``ModelWrapper.predict_on_dataset`` + ``BALD`` (its default in-memory replication)
at two batch sizes, the faster one counted. Reported: seconds, and the Spearman correlation of
the two score vectors (different masks, so close but not equal).

Case (issue 9): N = 10,000 pool points, K = 20 samples, C = 10 classes, a batch of 10, 10,000
sampled label configurations once the exact joint entropy would need more. The per-sample
probabilities are random Dirichlet draws with a fixed seed (the scores do not care where they
come from). Reported: seconds, peak extra heap in use (glibc ``mallinfo2``, sampled every
0.2 ms, in a second run: the watcher would slow the timed one), the picks of each and whether
they agree, and BALD's top 10 for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from bayesdrop import active
from bayesdrop._io import atomic_open

sys.path.insert(0, os.path.dirname(__file__))
from sampling import peak_extra  # noqa: E402 - the one memory probe of the benchmarks


def dirichlet_probs(n: int, k: int, c: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    centre = rng.dirichlet([0.5] * c, size=n)  # a per-point prediction, then K noisy samples of it
    return torch.from_numpy(np.stack([rng.dirichlet(centre[i] * 8 + 0.05, size=k) for i in range(n)]))


def run(fn, memory: bool = False) -> tuple[object, float, int | None]:
    """Result, seconds and (with ``memory``) peak extra heap of ``fn``. The memory watcher polls
    every 0.2 ms and takes the GIL each time, which slows Python-bound code: the time comes from a
    run without it, the memory from a second run under it."""
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    return value, seconds, peak_extra(fn)["heap"] if memory else None


def pool_scoring(n: int) -> dict:
    from scipy.stats import spearmanr
    from torch.utils.data import DataLoader, TensorDataset

    import bayesdrop as bd
    from bayesdrop import training
    from bayesdrop.data import load_mnist
    from bayesdrop.models import GalCNN

    x, y = load_mnist("test", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))
    pool = x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n]
    with training.seeded(0):
        net = GalCNN()
    mc = bd.wrap(net)
    training.fit(mc, TensorDataset(x[:1000], y[:1000]), epochs=2, batch_size=64, seed=0)
    row: dict = {"n": n, "k": 20, "model": "GalCNN"}

    def ours():
        loader = DataLoader(TensorDataset(pool), batch_size=512)
        return active.bald(mc.predict_loader(loader, samples=20, seed=0, consistent=True))

    mine, mine_s, _ = run(ours)
    print(f"pool scoring, bayesdrop: {mine_s:.2f} s", flush=True)
    row["bayesdrop"] = {"seconds": mine_s}
    try:
        from baal.active.heuristics import BALD
        from baal.bayesian.dropout import MCDropoutModule
        from baal.modelwrapper import ModelWrapper, TrainingArgs
    except ImportError:
        print("baal is not installed: see this script's docstring; no comparison")
        return row
    wrapped = MCDropoutModule(bd.unwrap(mc))  # the same trained weights
    dataset = TensorDataset(pool, torch.zeros(n, dtype=torch.long))
    best = None
    for batch_size in (64, 512):
        wrapper = ModelWrapper(
            wrapped,
            TrainingArgs(batch_size=batch_size, workers=0, use_cuda=False, criterion=torch.nn.CrossEntropyLoss()),
        )
        scores, seconds, _ = run(
            lambda w=wrapper: BALD().get_uncertainties(w.predict_on_dataset(dataset, iterations=20, verbose=False))
        )
        print(f"pool scoring, baal (batch {batch_size}): {seconds:.2f} s", flush=True)
        row[f"baal_batch_{batch_size}"] = {"seconds": seconds}
        if best is None or seconds < best[1]:
            best = (scores, seconds)
    rho = float(spearmanr(np.asarray(best[0]), mine.numpy()).statistic)
    row["spearman"] = rho
    print(f"pool scoring speed-up {best[1] / mine_s:.1f}x; Spearman correlation of the scores {rho:.3f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000-point pools")
    parser.add_argument("--case", choices=("all", "batchbald", "pool"), default="all")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    rows = {}
    if args.case in ("all", "pool"):
        rows["pool_scoring"] = pool_scoring(2_000 if args.quick else 10_000)
    if args.case in ("all", "batchbald"):
        rows["batchbald"] = batchbald_case(args.quick)
    if args.json:
        with atomic_open(args.json) as f:
            json.dump(rows, f, indent=2)


def batchbald_case(quick: bool) -> dict:
    n, k, c, batch, configurations = (2_000 if quick else 10_000), 20, 10, 10, 10_000
    probs = dirichlet_probs(n, k, c)
    print(f"pool {n} x K {k} x C {c}, batch {batch}, {configurations:,} sampled configurations", flush=True)
    ours, ours_s, ours_heap = run(lambda: active.batchbald(probs, batch, samples=configurations, seed=0), True)
    print(f"bayesdrop: {ours_s:.2f} s, peak heap {ours_heap / 2**20:.0f} MiB, picks {ours.tolist()}", flush=True)
    row = {"n": n, "k": k, "c": c, "batch": batch, "configurations": configurations}
    row["bayesdrop"] = {"seconds": ours_s, "peak_heap_bytes": ours_heap, "picks": ours.tolist()}
    row["bald_top"] = active.bald(probs).topk(batch).indices.tolist()
    try:
        from batchbald_redux.batchbald import get_batchbald_batch
    except ImportError:
        print("batchbald_redux is not installed: see this script's docstring; no comparison")
    else:
        log_probs = probs.log()
        theirs, theirs_s, theirs_heap = run(
            lambda: get_batchbald_batch(log_probs, batch, configurations, dtype=torch.double).indices, True
        )
        print(f"batchbald_redux: {theirs_s:.2f} s, peak heap {theirs_heap / 2**20:.0f} MiB, picks {theirs}")
        print(
            f"speed-up {theirs_s / ours_s:.1f}x, memory ratio {theirs_heap / max(ours_heap, 1):.1f}x, "
            f"same picks: {theirs == ours.tolist()}, same set: {set(theirs) == set(ours.tolist())}"
        )
        row["batchbald_redux"] = {"seconds": theirs_s, "peak_heap_bytes": theirs_heap, "picks": theirs}
    return row


if __name__ == "__main__":
    main()
