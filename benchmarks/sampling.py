"""MC sampling speed and memory: a naive Python loop vs plain batch replication vs bayesdrop.

Run: ``.venv/bin/python benchmarks/sampling.py`` (``--quick`` for fewer repeats).
All three approaches run in this one process on the same machine, on the same model and input;
the table prints times (medians; plain replication, bayesdrop and the limit in interleaved
rounds) and ratios. "plain replication" is what TorchUncertainty and baal do:
the whole model on T stacked copies of the batch, dropout modules in train mode.

CPU cases (targets from the project's issues 2 and 11):
  a. LeNet-5 (dropout after the fully connected layers), batch 256, T = 100
  b. ResNet-18 (32x32, dropout before the classifier), batch 64, T = 100
  c. UCI MLP (13 inputs, 50 hidden, dropout p = 0.05 on input and hidden), 51 rows, T = 10,000
Memory: on (b), peak extra resident memory of predict at T = 1,000 vs T = 10 (samples not kept),
each measured in a fresh subprocess.

``--device cuda`` runs the GPU cases of issue 11 instead (no memory case):
  a. ResNet-18 (32x32, dropout before the classifier), batch 256, T = 100
  b. LeNet-5 with dropout after every layer block, batch 1,024, T = 100
  c. the UCI MLP as above
Every table also has "limit": bayesdrop's own split, the prefix computed once and the stochastic
tail replicated with torch's own (unseeded) dropout, the floor for seeded masks on that route.
``--cases gpu --batch-scale 16`` runs the GPU cases with smaller batches (a smoke run on a CPU).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import torch
from torch import nn

import bayesdrop as bd
from bayesdrop._io import atomic_open
from bayesdrop.models import LeNet5, RegressionMLP, ResNet18

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


@contextmanager
def dropout_on(model: nn.Module):
    """The careful hand-written way: only dropout modules in train mode."""
    drops = [m for m in model.modules() if isinstance(m, _DROPOUT)]
    for m in drops:
        m.train()
    try:
        yield
    finally:
        for m in drops:
            m.eval()


def naive_loop(model, x, samples):
    with torch.no_grad(), dropout_on(model):
        probs = torch.stack([torch.softmax(model(x), -1) for _ in range(samples)], 1)
    return probs.mean(1)


def plain_replication(model, x, samples):
    with torch.no_grad(), dropout_on(model):
        out = model(x.repeat(samples, *([1] * (x.dim() - 1))))
    return torch.softmax(out, -1).reshape(samples, x.shape[0], -1).mean(0)


def deterministic(model, x, samples):
    with torch.no_grad():
        return model(x)


def prefix_once_limit(mc, model, x, samples):
    """The split bayesdrop chose, run without its masks: prefix once, tail on T replicas with the
    model's dropout modules in train mode (torch's RNG). Reads the wrapper's private route."""
    split = mc._runtime.route.split
    with torch.no_grad(), dropout_on(model):
        boundary = split.prefix(x)
        out = split.tail(*(b.repeat(samples, *([1] * (b.dim() - 1))) for b in boundary))
    return torch.softmax(out, -1).reshape(samples, x.shape[0], -1).mean(0)


def seconds(fn) -> float:
    """Wall time of one call (the GPU synchronised on both sides)."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_together(fns: dict, repeats: int, slow_repeats: int) -> dict:
    """Median seconds of each function, run in interleaved rounds, so that the drift of a shared
    machine hits them alike. A function whose warm-up (for bayesdrop also the one-time probe of
    the model) took over a second runs ``slow_repeats`` times, the others ``repeats`` times."""
    runs = {key: slow_repeats if seconds(fn) > 1.0 else repeats for key, fn in fns.items()}
    times = {key: [] for key in fns}
    for round_index in range(max(runs.values())):
        for key, fn in fns.items():
            if round_index < runs[key]:
                times[key].append(seconds(fn))
    return {key: statistics.median(t) for key, t in times.items()}


def timed(fn, repeats: int) -> float:
    return timed_together({"fn": fn}, repeats, repeats)["fn"]


def case(name, model, x, samples, task, repeats, slow_repeats, device="cpu"):
    model = model.to(device).eval()
    x = x.to(device)
    mc = bd.wrap(model, task=task)
    rows = {}
    print(f"[{name}] timing ...", file=sys.stderr, flush=True)
    rows["one deterministic forward"] = timed(lambda: deterministic(model, x, samples), repeats)
    rows["naive Python loop"] = timed(lambda: naive_loop(model, x, samples), slow_repeats)
    compared = {
        "plain batch replication": lambda: plain_replication(model, x, samples),
        "bayesdrop": lambda: mc.predict(x, samples=samples, seed=0),
    }
    mc.predict(x, samples=2, seed=0)  # the probe decides the route
    if mc._runtime.route.kind == "fx":
        compared["limit"] = lambda: prefix_once_limit(mc, model, x, samples)
    rows.update(timed_together(compared, repeats, slow_repeats))
    return {
        "case": name,
        "samples": samples,
        "batch": x.shape[0],
        "seconds": rows,
        "describe": mc.describe().splitlines()[-2],
    }


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = _MallInfo2


def _heap_in_use() -> int:
    """Bytes the C allocator has handed out and not taken back (torch CPU tensors, NumPy arrays)."""
    info = _libc.mallinfo2()
    return info.uordblks + info.hblkhd


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_extra(fn) -> dict[str, int]:
    """Peak heap in use and peak resident memory above their levels before ``fn`` ran
    (sampled every 0.2 ms; the heap is the stable measure, RSS depends on the allocator)."""
    base_heap, base_rss = _heap_in_use(), _rss_bytes()
    peak = {"heap": base_heap, "rss": base_rss}
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak["heap"] = max(peak["heap"], _heap_in_use())
            peak["rss"] = max(peak["rss"], _rss_bytes())
            time.sleep(0.0002)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return {"heap": peak["heap"] - base_heap, "rss": peak["rss"] - base_rss}


def memory_child(samples: int) -> None:
    torch.manual_seed(0)
    model = ResNet18(in_channels=3, input_size=32, dropout=0.5).eval()
    x = torch.randn(64, 3, 32, 32)
    mc = bd.wrap(model, example_input=x[:2])
    mc.predict(x[:2], samples=2)  # warm-up on a tiny batch
    extra = peak_extra(lambda: mc.predict(x, samples=samples, seed=0))
    print(json.dumps({"samples": samples, **extra}))


def memory_case() -> dict:
    out = {}
    for samples in (10, 1000):
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(samples)], capture_output=True, text=True, check=True
        )
        out[samples] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu (the CPU cases) or cuda (the GPU cases)")
    parser.add_argument("--cases", choices=["cpu", "gpu"], help="which case set (default: the device's)")
    parser.add_argument("--batch-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    repeats, slow = (3, 1) if args.quick else (7, 2)
    device = torch.device(args.device)
    torch.manual_seed(0)

    def batch(size: int) -> int:
        return max(1, round(size / args.batch_scale))

    def lenet(placement):
        return LeNet5(input_size=28, dropout=0.5, placement=placement)

    def resnet():
        return ResNet18(in_channels=3, input_size=32, dropout=0.5)

    uci_mlp = RegressionMLP(in_features=13, hidden=(50,), dropout=0.05, placement="both")
    uci = ("c. UCI MLP 13-50-1, 51 rows", uci_mlp, torch.randn(51, 13), 10_000)
    if (args.cases or device.type) == "cpu":
        specs = [
            ("a. LeNet-5, batch 256", lenet("fc"), torch.randn(batch(256), 1, 28, 28), 100),
            ("b. ResNet-18 32x32, batch 64", resnet(), torch.randn(batch(64), 3, 32, 32), 100),
            uci,
        ]
    else:
        specs = [
            ("a. ResNet-18 32x32, batch 256", resnet(), torch.randn(batch(256), 3, 32, 32), 100),
            ("b. LeNet-5 all dropout, batch 1,024", lenet("all"), torch.randn(batch(1024), 1, 28, 28), 100),
            uci,
        ]
    results = []
    for name, model, x, samples in specs:
        task = "regression" if isinstance(model, RegressionMLP) else "classification"
        slow_repeats = 1 if isinstance(model, ResNet18) and device.type == "cpu" else slow
        results.append(case(name, model, x, samples, task, repeats, slow_repeats, device))
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        machine = f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    print(f"machine: {machine}\n")
    print(
        "| case | T | naive loop | plain replication | bayesdrop | limit | 1 forward "
        "| plain / bayesdrop | bayesdrop / limit | naive / bayesdrop | bayesdrop / 1 forward |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["seconds"]
        ours, limit = s["bayesdrop"], s.get("limit")
        print(
            f"| {r['case']} | {r['samples']:,} | {s['naive Python loop']:.3f} s | "
            f"{s['plain batch replication']:.3f} s | {ours:.4f} s | "
            + (f"{limit:.4f} s" if limit else "-")
            + f" | {s['one deterministic forward']:.4f} s | **{s['plain batch replication'] / ours:.1f}x** | "
            + (f"{ours / limit:.2f}x" if limit else "-")
            + f" | {s['naive Python loop'] / ours:.1f}x | {ours / s['one deterministic forward']:.2f}x |"
        )
    print()
    for r in results:
        print(f"{r['case']}: {r['describe']}")
    memory = memory_case() if (args.cases or device.type) == "cpu" else None
    for kind, label in (("heap", "heap in use"), ("rss", "resident set")) if memory else ():
        small, large = memory[10][kind], memory[1000][kind]
        print(
            f"memory (b), peak extra {label} during predict, samples not kept: T=10: {small / 2**20:.1f} MiB, "
            f"T=1,000: {large / 2**20:.1f} MiB, ratio {large / max(small, 1):.2f}x"
        )
    if args.json:
        payload = {"machine": machine, "device": str(device), "cases": results, "memory_peak_extra_bytes": memory}
        with atomic_open(args.json) as f:
            json.dump(payload, f, indent=2)


if __name__ == "__main__":
    main()
