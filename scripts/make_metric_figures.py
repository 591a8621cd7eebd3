"""Draw the example figures of ``bayesdrop.plots`` into docs/figures/ and print the metrics table.

Classification: a small MLP with dropout trained for a few seconds on scikit-learn's 8x8 digits
(1,797 images, first 1,200 for training), MC-dropout predictions (T = 100) on the other 597,
and as out-of-distribution inputs the first 597 Fashion-MNIST test images shrunk to 8x8
(clothes instead of digits; rotated digits when Fashion-MNIST is not installed).
Regression: a 1-D toy problem (y = sin(x), noise sd 0.1 on [-4, -1] and 0.25 on [1, 4], no
data in between) fitted by an MLP with a mean and log-variance head, predicted on [-7, 7].

Run:  .venv/bin/python scripts/make_metric_figures.py [--out docs/figures]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

import bayesdrop as bd
from bayesdrop import metrics, plots
from bayesdrop.data import load_digits, load_fashion_mnist, rotate


def train_digits(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x, y = load_digits(size=8)
    perm = torch.randperm(len(y))
    x, y = x[perm], y[perm]
    x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    net.train()
    for _ in range(30):
        for i in range(0, 1200, 64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x_train[i : i + 64]), y_train[i : i + 64])
            loss.backward()
            opt.step()
    net.eval()
    try:
        fashion, _ = load_fashion_mnist("test")
        x_ood = nn.functional.adaptive_avg_pool2d(fashion[: len(y_test)], 8)
    except bd.BayesdropError:
        x_ood = rotate(x_test, 90.0)
    return net, x_test, y_test, x_ood


class HeteroscedasticMLP(nn.Module):
    """1 -> 64 -> 64 -> (mean, log variance), dropout after each hidden layer."""

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(1, 64), nn.ReLU(), nn.Dropout(p), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(p)
        )
        self.mean = nn.Linear(64, 1)
        self.logvar = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mean(h), self.logvar(h)


def train_toy_regression(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.rand(150, 1, generator=g) * 3 - 4.5, torch.rand(150, 1, generator=g) * 3 + 1])
    noise = 0.05 + 0.08 * x.abs()
    y = torch.sin(x) + noise * torch.randn(x.shape, generator=g)
    torch.manual_seed(seed)
    net = HeteroscedasticMLP()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(1500):
        opt.zero_grad()
        mean, logvar = net(x)
        loss = nn.functional.gaussian_nll_loss(mean, y, logvar.exp())
        loss.backward()
        opt.step()
    net.eval()
    x_test = torch.linspace(-7, 7, 400)[:, None]
    return net, x, y, x_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    out = Path(args.out)

    t0 = time.perf_counter()
    torch.set_num_threads(1)
    net, x_test, y_test, x_ood = train_digits()
    mc = bd.wrap(net)
    pred = mc.predict(x_test, samples=args.samples, seed=0, keep_samples=True)
    ood = mc.predict(x_ood, samples=args.samples, seed=1)
    results = metrics.evaluate(pred, y_test, ood=ood, model=net, inputs=x_test[:1])
    metrics.print_table(results)

    plots.reliability_diagram(pred, y_test, path=out / "reliability_diagram.png")
    plots.risk_coverage(pred, y_test, path=out / "risk_coverage.png")
    # The test input whose MC samples disagree most (highest mutual information).
    i = int(pred.epistemic.argmax())
    top2 = pred.mean[i].topk(2).indices.tolist()
    plots.mc_histogram(pred, index=i, cls=top2, path=out / "mc_histogram.png")
    plots.ood_histogram(pred, ood, score="mutual_information", path=out / "ood_histogram.png")

    reg, x_train, y_train, x_grid = train_toy_regression()
    mc_reg = bd.wrap(reg, task="regression", output="mean_logvar")
    pred_reg = mc_reg.predict(x_grid, samples=4 * args.samples, seed=0)
    plots.regression_bands(x_grid, pred_reg, train_x=x_train, train_y=y_train, path=out / "regression_bands.png")
    print(f"figures written to {out}/ in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
