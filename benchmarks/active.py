"""BatchBALD speed and memory: bayesdrop.active.batchbald vs batchbald_redux, in one process.

Run: ``.venv/bin/python benchmarks/active.py`` (``--quick``: a 2,000-point pool). The peer is
not a dependency; install it beside the project's torch without its own pins:
``pip install --no-deps batchbald_redux==2.0.5 "toma<2" psutil``.

Case (issue 9): N = 10,000 pool points, K = 20 samples, C = 10 classes, a batch of 10, 10,000
sampled label configurations once the exact joint entropy would need more. The per-sample
probabilities are random Dirichlet draws with a fixed seed (the scores do not care where they
come from). Reported: seconds, peak extra heap in use (glibc ``mallinfo2``, sampled every
0.2 ms), the picks of each and whether they agree, and BALD's top 10 for reference.
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


def run(fn) -> tuple[object, float, int]:
    result = {}

    def call():
        start = time.perf_counter()
        result["value"] = fn()
        result["seconds"] = time.perf_counter() - start

    memory = peak_extra(call)
    return result["value"], result["seconds"], memory["heap"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 2,000-point pool")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    n, k, c, batch, configurations = (2_000 if args.quick else 10_000), 20, 10, 10, 10_000
    probs = dirichlet_probs(n, k, c)
    print(f"pool {n} x K {k} x C {c}, batch {batch}, {configurations:,} sampled configurations", flush=True)
    ours, ours_s, ours_heap = run(lambda: active.batchbald(probs, batch, samples=configurations, seed=0))
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
            lambda: get_batchbald_batch(log_probs, batch, configurations, dtype=torch.double).indices
        )
        print(f"batchbald_redux: {theirs_s:.2f} s, peak heap {theirs_heap / 2**20:.0f} MiB, picks {theirs}")
        print(
            f"speed-up {theirs_s / ours_s:.1f}x, memory ratio {theirs_heap / max(ours_heap, 1):.1f}x, "
            f"same picks: {theirs == ours.tolist()}, same set: {set(theirs) == set(ours.tolist())}"
        )
        row["batchbald_redux"] = {"seconds": theirs_s, "peak_heap_bytes": theirs_heap, "picks": theirs}
    if args.json:
        with atomic_open(args.json) as f:
            json.dump(row, f, indent=2)


if __name__ == "__main__":
    main()
