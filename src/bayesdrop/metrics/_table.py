"""Printed tables of ``evaluate`` results, grouped like TorchUncertainty's.

Classification: Classification, Calibration, Selective classification, OOD detection,
Complexity. Regression: Regression, Complexity. Rates print as percentages; the dict keeps
fractions.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

from .._errors import expected

__all__ = ["format_table", "print_table"]

_SCORE_LABELS = {
    "msp": "MSP",
    "entropy": "Entropy",
    "mutual_information": "MI",
    "variation_ratio": "VarRatio",
}


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _num(v: float) -> str:
    return f"{v:.4f}"


def _count(v: float) -> str:
    return f"{int(v):,}"


def _si(v: float) -> str:
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f} {unit}"
    return f"{int(v)}"


def _level_label(key: str, prefix: str) -> str:
    return key[len(prefix) :].replace("_", ".") + "%"


def _classification_groups(r: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    groups: list[tuple[str, list[tuple[str, str]]]] = []

    def rows(spec: list[tuple[str, str, Any]]) -> list[tuple[str, str]]:
        return [(label, fmt(r[key])) for key, label, fmt in spec if key in r]

    groups.append(
        (
            "Classification",
            rows(
                [
                    ("accuracy", "Acc", _pct),
                    ("nll", "NLL", _num),
                    ("brier", "Brier", _num),
                    ("entropy", "Entropy", _num),
                    ("expected_entropy", "Expected entropy", _num),
                    ("mutual_information", "MI", _num),
                ]
            ),
        )
    )
    nb = r.get("n_bins")
    suffix = f" ({nb} bins)" if nb else ""
    groups.append(
        (
            "Calibration" + suffix,
            rows(
                [
                    ("ece", "ECE", _pct),
                    ("aece", "aECE", _pct),
                    ("mce", "MCE", _pct),
                    ("cwece", "Classwise ECE", _pct),
                ]
            ),
        )
    )
    sel = rows([("aurc", "AURC", _pct), ("augrc", "AUGRC", _pct)])
    for key in sorted(r):
        m = re.fullmatch(r"risk_at_(.+)_coverage", key)
        if m:
            sel.append((f"Risk@{m.group(1).replace('_', '.')}Cov", _pct(r[key])))
    for key in sorted(r):
        m = re.fullmatch(r"coverage_at_(.+)_risk", key)
        if m:
            reached = r.get(key + "_reached", True)
            value = _pct(r[key]) if reached else "never reached"
            sel.append((f"Cov@{m.group(1).replace('_', '.')}Risk", value))
    sel += rows(
        [
            ("error_auroc_entropy", "Error AUROC (entropy)", _pct),
            ("error_auroc_mutual_information", "Error AUROC (MI)", _pct),
        ]
    )
    groups.append(("Selective classification", sel))
    return groups


def _ood_table(r: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    scores = [s for s in _SCORE_LABELS if f"ood_auroc_{s}" in r]
    if not scores:
        return None
    header = ["OOD detection"] + [_SCORE_LABELS[s] for s in scores]
    body = []
    for metric, label in (
        ("auroc", "AUROC"),
        ("aupr_in", "AUPR-In"),
        ("aupr_out", "AUPR-Out"),
        ("fpr95", "FPR95"),
    ):
        body.append([label] + [_pct(r[f"ood_{metric}_{s}"]) for s in scores])
    return header, body


def _regression_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    spec = [
        ("rmse", "RMSE", _num),
        ("mae", "MAE", _num),
        ("gaussian_nll", "Gaussian NLL", _num),
        ("mc_log_likelihood", "MC log-likelihood", _num),
        ("crps", "CRPS", _num),
        ("qce", "QCE", _pct),
    ]
    out = [(label, fmt(r[key])) for key, label, fmt in spec if key in r]
    for key in sorted(k for k in r if k.startswith("picp_")):
        lvl = _level_label(key, "picp_")
        out.append((f"PICP@{lvl}", _pct(r[key])))
        wkey = "width_" + key[len("picp_") :]
        if wkey in r:
            out.append((f"Width@{lvl}", _num(r[wkey])))
    out += [
        (label, _num(r[key]))
        for key, label in (("aleatoric", "Aleatoric var"), ("epistemic", "Epistemic var"))
        if key in r
    ]
    return out


def _complexity_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if "n_samples" in r:
        out.append(("MC samples", _count(r["n_samples"])))
    if "params" in r:
        out.append(("Params", _si(r["params"])))
    if "flops" in r:
        out.append(("FLOPs (1 forward)", _si(r["flops"])))
    if "mc_flops" in r:
        out.append(("FLOPs (MC, naive)", _si(r["mc_flops"])))
    if "mc_flops_engine" in r:
        out.append(("FLOPs (MC, bayesdrop)", _si(r["mc_flops_engine"])))
    return out


def _box(header: list[str], body: list[list[str]], widths: list[int]) -> list[str]:
    def line(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(cells: list[str]) -> str:
        first = f" {cells[0]:<{widths[0]}} "
        rest = [f" {c:>{w}} " for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "│" + "│".join([first, *rest]) + "│"

    lines = [line("┌", "┬", "┐"), row(header), line("├", "┼", "┤")]
    lines += [row(cells) for cells in body]
    lines.append(line("└", "┴", "┘"))
    return lines


def format_table(results: dict[str, Any]) -> str:
    """Render ``evaluate`` results as grouped box tables (one per group), as a string.

    >>> print(format_table({"task": "regression", "n_examples": 2, "n_samples": 10,
    ...                     "rmse": 0.5, "mae": 0.25}))
    Regression · 2 examples · T = 10 MC samples
    ┌───────────────┬────────────┐
    │ Regression    │            │
    ├───────────────┼────────────┤
    │ RMSE          │     0.5000 │
    │ MAE           │     0.2500 │
    └───────────────┴────────────┘
    ┌───────────────┬────────────┐
    │ Complexity    │            │
    ├───────────────┼────────────┤
    │ MC samples    │         10 │
    └───────────────┴────────────┘
    """
    if not isinstance(results, dict):
        raise expected("results", "the dict returned by `evaluate`", type(results).__name__)
    task = results.get("task") or ("regression" if "rmse" in results else "classification")
    groups: list[tuple[list[str], list[list[str]]]] = []
    if task == "classification":
        for title, rows in _classification_groups(results):
            if rows:
                groups.append(([title, ""], [[a, b] for a, b in rows]))
        ood = _ood_table(results)
        if ood:
            groups.append(ood)
    else:
        rows = _regression_rows(results)
        if rows:
            groups.append((["Regression", ""], [[a, b] for a, b in rows]))
    comp = _complexity_rows(results)
    if comp:
        groups.append((["Complexity", ""], [[a, b] for a, b in comp]))

    first_w = max([13] + [len(g[0][0]) for g in groups] + [len(r[0]) for g in groups for r in g[1]])
    cells = [c for g in groups for c in g[0][1:]] + [c for g in groups for r in g[1] for c in r[1:]]
    value_w = max([10] + [len(c) for c in cells])
    title = task.capitalize()
    if "n_examples" in results:
        title += f" · {_count(results['n_examples'])} examples"
    if "n_ood" in results:
        title += f" + {_count(results['n_ood'])} OOD"
    if "n_samples" in results:
        title += f" · T = {_count(results['n_samples'])} MC samples"
    lines = [title]
    for header, body in groups:
        widths = [first_w] + [value_w] * (len(header) - 1)
        lines += _box(header, body, widths)
    return "\n".join(lines)


def print_table(results: dict[str, Any], file: TextIO | None = None) -> None:
    """Print :func:`format_table` of ``results`` to ``file`` (None: stdout)."""
    print(format_table(results), file=file or sys.stdout)
