"""Train an MC-dropout LeNet-5 briefly on Fashion-MNIST and print bayesdrop's full metrics table.

In-distribution test set: Fashion-MNIST test images; out-of-distribution: MNIST test digits
(``../shared/data/mnist`` or wherever ``bayesdrop.data.load_mnist`` finds them). Also writes the
metrics (JSON), the table (text) and the plots of ``bayesdrop.plots`` to ``--out``.

Run:  .venv/bin/python scripts/evaluate_fashion_lenet.py [--epochs 1] [--train-size 60000]
          [--test-size 10000] [--samples 100] [--out outputs/fashion_lenet]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

import bayesdrop as bd
from bayesdrop import metrics, plots
from bayesdrop.data import load_fashion_mnist, load_ood_pair
from bayesdrop.models import LeNet5
from bayesdrop.training import fit

REPO = Path(__file__).resolve().parents[1]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--test-size", type=int, default=10000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mnist-root",
        default=os.environ.get("BAYESDROP_SHARED_DATA", str(REPO.parent / "shared" / "data")),
    )
    parser.add_argument("--out", default="outputs/fashion_lenet")
    args = parser.parse_args()
    out = Path(args.out)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    x_train, y_train = load_fashion_mnist("train")
    g = torch.Generator().manual_seed(args.seed)
    keep = torch.randperm(len(y_train), generator=g)[: args.train_size]
    train = TensorDataset(x_train[keep], y_train[keep])
    pair = load_ood_pair("fashion-mnist", mnist_root=args.mnist_root, n=args.test_size, seed=args.seed)

    model = LeNet5(dropout=args.dropout)
    mc = bd.wrap(model)
    fit(mc, train, epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed, device="cpu")
    t_train = time.perf_counter() - t0

    t1 = time.perf_counter()
    pred = mc.predict_loader(
        [(pair.x_in[i : i + 500], pair.y_in[i : i + 500]) for i in range(0, len(pair.y_in), 500)],
        samples=args.samples,
        seed=args.seed,
    )
    ood = mc.predict_loader(
        [pair.x_out[i : i + 500] for i in range(0, len(pair.x_out), 500)],
        samples=args.samples,
        seed=args.seed + 1,
    )
    t_pred = time.perf_counter() - t1
    results = metrics.evaluate(pred, pair.y_in, ood=ood, model=model, inputs=pair.x_in[:1])
    table = metrics.format_table(results)
    print(table)
    print(
        f"training {t_train:.1f} s ({args.epochs} epoch(s) on {len(keep):,} images), "
        f"MC prediction {t_pred:.1f} s ({2 * len(pair.y_in):,} images x {args.samples} samples)"
    )

    _write_atomic(out / "metrics.json", json.dumps(results, indent=2) + "\n")
    _write_atomic(out / "metrics.txt", table + "\n")
    plots.reliability_diagram(pred, pair.y_in, path=out / "reliability_diagram.png")
    plots.risk_coverage(pred, pair.y_in, path=out / "risk_coverage.png")
    plots.ood_histogram(pred, ood, score="entropy", path=out / "ood_histogram_entropy.png")
    plots.ood_histogram(pred, ood, score="mutual_information", path=out / "ood_histogram_mi.png")
    print(f"written to {out}/")


if __name__ == "__main__":
    main()
