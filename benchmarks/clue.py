"""CLUE speed: bayesdrop.explain.clue vs the same optimisation as a Python loop over MC samples.

Case (issue 10): 512 Credit rows (29 encoded columns), an MC-dropout MLP 2 x 200 (p = 0.1) with
dropout after every hidden layer (the reproductions' network) and, second, the same MLP with
dropout only before its output layer (where the engine computes the trunk once), the
CLUE paper's tabular VAE (residual MLPs 300 wide, 3 deep, latent 8), S = 64 samples, 50 Adam
steps on z, total-entropy objective with the L1 term, no early stopping (every row runs all 50
steps in both). The loop is what one writes by hand: for each step, S forward passes of the
network in train mode (torch's own dropout), the mean of the softmaxes, its entropy, backward.
Weights are seeded random initialisations (the cost does not depend on them). Both run in one
process, three timed runs each, interleaved, medians reported; the ratio is what to read. Peak
extra heap (glibc mallinfo2) is reported too, from a separate run of each (the heap watcher's
polling thread would slow a timed one).

Run: ``python benchmarks/clue.py [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

import bayesdrop as bd
from bayesdrop import training
from bayesdrop._io import atomic_open
from bayesdrop.data.tabular import load_credit
from bayesdrop.explain import clue, tabular_vae

sys.path.insert(0, os.path.dirname(__file__))
from sampling import peak_extra  # noqa: E402 - the one memory probe of the benchmarks


def loop_clue(net, vae, x, lam, steps, samples, lr):
    """The hand-written version: S train-mode forwards per step."""
    with torch.no_grad():
        z = vae.encode(x)[0].clone()
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    net.train()
    d = x.shape[1]
    for _ in range(steps):
        decoded = vae.decode(z, hard=True)
        probs = torch.stack([torch.softmax(net(decoded), 1) for _ in range(samples)]).mean(0)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
        objective = entropy + lam / d * (decoded - x).abs().sum(1)
        opt.zero_grad()
        objective.sum().backward()
        opt.step()
    net.eval()
    return z.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, interleaved (medians)")
    args = parser.parse_args()
    data = load_credit()
    x = data.x_test[: args.rows]
    with training.seeded(0):
        vae = tabular_vae(data.widths, latent=8)
    vae.eval()
    steps, samples, lam, lr = 50, 64, 1.0, 0.1
    print(f"{args.rows} Credit rows, S = {samples}, {steps} steps, torch threads {torch.get_num_threads()}")
    rows = {}
    for placement in ("every hidden layer", "before the output layer"):
        every = placement == "every hidden layer"
        with training.seeded(0):
            net = nn.Sequential(
                nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Dropout(0.1) if every else nn.Identity(),
                nn.Linear(200, 200), nn.ReLU(), nn.Dropout(0.1), nn.Linear(200, 2),
            )  # fmt: skip
        mc = bd.wrap(net)
        timings = {}

        def ours(mc=mc, timings=timings):
            start = time.perf_counter()
            clue(mc, vae, x, lam=lam, steps=steps, samples=samples, lr=lr, tolerance=0.0, patience=steps + 1)
            timings["bayesdrop"] = time.perf_counter() - start

        def theirs(net=net, timings=timings):
            start = time.perf_counter()
            loop_clue(net, vae, x, lam, steps, samples, lr)
            timings["loop"] = time.perf_counter() - start

        # warm-up: first-call costs (lazy imports, the wrapper's probe) are not what is compared
        clue(mc, vae, x[:8], steps=2, samples=4)
        loop_clue(net, vae, x[:8], lam, 2, 4, lr)
        # three interleaved timed runs each, medians reported (this shared VM's speed drifts);
        # memory in separate runs: the heap watcher's thread takes the GIL every 0.2 ms, which
        # would slow Python-bound code and blur the timing
        runs: dict[str, list[float]] = {"bayesdrop": [], "loop": []}
        for _ in range(args.repeats):
            for fn in (ours, theirs):
                fn()
            for name in runs:
                runs[name].append(timings[name])
        ours_memory = peak_extra(ours)["heap"]
        loop_memory = peak_extra(theirs)["heap"]
        timings.update({name: statistics.median(values) for name, values in runs.items()})
        ratio = timings["loop"] / timings["bayesdrop"]
        print(f"dropout {placement}:")
        print(f"  bayesdrop.explain.clue: {timings['bayesdrop']:.2f} s, peak heap {ours_memory / 2**20:.0f} MiB")
        print(f"  python loop over samples: {timings['loop']:.2f} s, peak heap {loop_memory / 2**20:.0f} MiB")
        print(f"  speed-up {ratio:.1f}x")
        rows[placement] = {
            "seconds": dict(timings),
            "runs": runs,
            "speedup": ratio,
            "peak_heap_bytes": {"bayesdrop": ours_memory, "loop": loop_memory},
        }
    if args.json:
        with atomic_open(args.json) as f:
            json.dump({"rows": args.rows, "samples": samples, "steps": steps, "cases": rows}, f, indent=2)


if __name__ == "__main__":
    main()
