"""Image and extrapolation experiments of Gal & Ghahramani (2016), and a dropout-technique study.

One command per experiment; each writes a Markdown report, a chart (and for the study a JSON
file) into ``--out``::

    python -m bayesdrop.reproduce.images rotated-digit --out docs/results
    python -m bayesdrop.reproduce.images co2 --out docs/results
    python -m bayesdrop.reproduce.images fashion-study --out docs/results

- :mod:`bayesdrop.reproduce.rotated_digit`: LeNet with dropout before the last layer, one
  digit 1 rotated in 12 steps, 100 MC samples (the paper's figure 4).
- :mod:`bayesdrop.reproduce.co2`: 4 x 1,024 ReLU net with dropout 0.1 on the Mauna Loa CO2
  series, MC bands over the extrapolation range (the paper's figure 2).
- :mod:`bayesdrop.reproduce.fashion_study`: MC dropout vs DropConnect vs Gaussian vs Concrete
  dropout on Fashion-MNIST, over rates and numbers of samples, MNIST digits as OOD.

The small helpers the three share (atomic text files, the machine description, the data
folder) live in :mod:`bayesdrop.reproduce._common`, which the three import instead of this
command-line module. matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .._errors import expected
from ..data import shared_data_root
from ._common import machine_description, write_text_atomic

# the helpers are re-exported for code that imported them from here before they moved
__all__ = ["main", "write_text_atomic", "machine_description"]


def command_line(argv: Sequence[str] | None) -> str:
    """The command that reproduces a run, as typed in a shell."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "python -m bayesdrop.reproduce.images " + " ".join(shlex.quote(a) for a in args)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _tau(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bayesdrop.reproduce.images",
        description="Gal & Ghahramani (2016) image and extrapolation experiments, and a "
        "Fashion-MNIST dropout-technique study.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="docs/results", help="folder of the results")
    common.add_argument("--data", default=None, help="shared data folder (mnist/, co2/)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is fastest on a busy shared 2-core machine)",
    )
    sub = parser.add_subparsers(dest="experiment", required=True)

    rd = sub.add_parser("rotated-digit", parents=[common], help="rotated digit 1 (figure 4)")
    rd.add_argument("--epochs", type=int, default=10)
    rd.add_argument("--steps", type=int, default=12)
    rd.add_argument(
        "--total-angle",
        type=float,
        default=110.0,
        help="rotation of the last image in degrees (positive: counter-clockwise)",
    )
    rd.add_argument("--samples", type=int, default=100)
    rd.add_argument(
        "--train-size", type=int, default=None, help="use only this many of the 9,000 training images (tests)"
    )

    co = sub.add_parser("co2", parents=[common], help="CO2 extrapolation (figure 2)")
    co.add_argument("--steps", type=int, default=1500, help="Adam steps (mini-batches)")
    co.add_argument("--batch-size", type=int, default=32)
    co.add_argument("--lr", type=float, default=1e-3)
    co.add_argument("--hidden", type=_ints, default=(1024, 1024, 1024, 1024))
    co.add_argument("--samples", type=int, default=200)
    co.add_argument(
        "--tau", type=_tau, default=None, help="model precision: a number, or 'auto' (1 / training MSE of the MC mean)"
    )
    co.add_argument("--length-scale", type=float, default=1e-2)

    fs = sub.add_parser("fashion-study", parents=[common], help="dropout-technique study")
    fs.add_argument("--methods", default="dropout,dropconnect,gaussian,concrete")
    fs.add_argument("--rates", type=_floats, default=(0.1, 0.3, 0.5))
    fs.add_argument("--samples", type=_ints, default=(1, 10, 50))
    fs.add_argument("--train-size", type=int, default=30000)
    fs.add_argument("--test-size", type=int, default=5000)
    fs.add_argument("--epochs", type=int, default=3)
    fs.add_argument("--batch-size", type=int, default=128)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.threads < 1:
        raise expected("--threads", "a positive integer", args.threads)
    torch.set_num_threads(args.threads)
    root = Path(args.data) if args.data else shared_data_root()
    out = Path(args.out)
    cmd = command_line(argv)
    t0 = time.perf_counter()
    if args.experiment == "rotated-digit":
        from .rotated_digit import run_rotated_digit

        result = run_rotated_digit(
            root,
            out=out,
            epochs=args.epochs,
            steps=args.steps,
            total_angle=args.total_angle,
            samples=args.samples,
            seed=args.seed,
            train_size=args.train_size,
            command=cmd,
        )
        print("predicted classes:", " ".join(map(str, result.predicted)))
    elif args.experiment == "co2":
        from .co2 import run_co2

        result = run_co2(
            root,
            out=out,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            hidden=args.hidden,
            samples=args.samples,
            tau=args.tau,
            length_scale=args.length_scale,
            seed=args.seed,
            command=cmd,
        )
        print(f"tau = {result.tau:.4g}; std ratio far/in = {result.std_ratio:.2f}")
    else:
        from .fashion_study import run_fashion_study

        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        result = run_fashion_study(
            root,
            out=out,
            methods=methods,
            rates=args.rates,
            samples=args.samples,
            train_size=args.train_size,
            test_size=args.test_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            command=cmd,
        )
        print(result.table_markdown)
    print(f"done in {time.perf_counter() - t0:.0f} s; results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
