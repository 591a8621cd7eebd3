"""MC sampling of the models people use: Hugging Face transformers and timm, built from configs.

Run: ``.venv/bin/python benchmarks/models.py`` (``--quick`` for fewer repeats, ``--out FILE`` to
write the results as JSON). Needs the ``integrations`` extra (transformers, timm); no weights
are downloaded: every model is built from a small config with random weights.

For each model and T, in this one process on the same input:

- one forward: the model in eval mode, once;
- naive loop: T forward passes in training mode (normalisation layers in eval), the loop
  people write;
- plain replication: one forward of the batch stacked T times, in training mode (normalisation
  layers in eval), what TorchUncertainty and baal do;
- bayesdrop first call: ``bd.wrap(model).predict(x, samples=T)`` on a fresh wrapper (probe,
  split check and memory measurement included);
- bayesdrop steady state: the same call again.

All samples the same stochasticity: every dropout the model applies when it trains (attention
dropout included). Times are medians; ratios are to one forward. The last line is the BERT case
of issue 8: only the classifier's dropout stochastic (``last_layer=True``), batch 16 x 64 tokens,
T = 32, whose target is at most 1.5x one forward.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from contextlib import contextmanager

import torch
from sampling import timed as median_time  # the benchmark beside this one (its folder is on sys.path)
from torch import nn

import bayesdrop as bd

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@contextmanager
def training_mode(model: nn.Module):
    """Training mode with normalisation layers in eval: the model's own training-time dropout."""
    model.train()
    for m in model.modules():
        if isinstance(m, _NORMS):
            m.eval()
    try:
        yield
    finally:
        model.eval()


def _logits(out):
    return out.logits if hasattr(out, "logits") else out


def _call(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def _repeat(inputs, samples):
    if isinstance(inputs, dict):
        return {k: v.repeat(samples, *([1] * (v.dim() - 1))) for k, v in inputs.items()}
    return inputs.repeat(samples, *([1] * (inputs.dim() - 1)))


def naive_loop(model, inputs, samples):
    with torch.no_grad(), training_mode(model):
        probs = torch.stack([torch.softmax(_logits(_call(model, inputs)), -1) for _ in range(samples)], 1)
    return probs.mean(1)


def plain_replication(model, inputs, samples):
    with torch.no_grad(), training_mode(model):
        out = _logits(_call(model, _repeat(inputs, samples)))
    batch = out.shape[0] // samples
    return torch.softmax(out, -1).reshape(samples, batch, -1).mean(0)


def build_models():
    """(name, model, inputs, wrap options) for every row; small configs, random weights."""
    import timm
    from transformers import GPT2Config, GPT2ForSequenceClassification

    bert, ids = bert_classifier(width=128, layers=2, batch=8, tokens=32)
    gpt2_config = GPT2Config(
        vocab_size=1000,
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
        num_labels=3,
        pad_token_id=0,
    )
    gpt2 = GPT2ForSequenceClassification(gpt2_config).eval()
    drops = {"drop_rate": 0.1}
    vit = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=4,
        num_classes=10,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        proj_drop_rate=0.1,
    ).eval()
    images = torch.randn(4, 3, 32, 32)
    return [
        ("BERT 2x128, 8x32 tokens", bert, ids, {}),
        ("GPT-2 2x64, 4x16 tokens", gpt2, {"input_ids": torch.randint(1, 1000, (4, 16))}, {}),
        ("timm ViT-tiny 32px/4, batch 4", vit, images, {}),
        (
            "timm ConvNeXt-atto 64px, batch 8",
            timm.create_model("convnext_atto", pretrained=False, num_classes=10, **drops).eval(),
            torch.randn(8, 3, 64, 64),
            {},
        ),
        (
            "timm EfficientNet-B0 64px, batch 8",
            timm.create_model("efficientnet_b0", pretrained=False, num_classes=10, **drops).eval(),
            torch.randn(8, 3, 64, 64),
            {},
        ),
    ]


def bert_classifier(width: int, layers: int, batch: int, tokens: int):
    """A BERT classifier (3 classes, dropout 0.1 everywhere) and a batch of token ids with its mask."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=1000,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=width // 64,
        intermediate_size=4 * width,
        num_labels=3,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    ids = torch.randint(0, 1000, (batch, tokens))
    return BertForSequenceClassification(config).eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def bert_last_layer_case():
    return bert_classifier(width=256, layers=4, batch=16, tokens=64)


def interleaved(functions: dict, repeats: int, rounds: int = 3) -> dict:
    """Median time of each function over ``rounds`` alternating blocks (a busy machine slows
    them alike); each block starts with an untimed call, so no function is timed right after
    another one has evicted its caches."""
    times = {name: [] for name in functions}
    per_block = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for name, fn in functions.items():
            fn()
            for _ in range(per_block):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(name, model, inputs, options, samples, repeats):
    naive = median_time(lambda: naive_loop(model, inputs, samples), max(3, repeats // 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mc = bd.wrap(model, **options)
        start = time.perf_counter()
        mc.predict(inputs, samples=samples, seed=0)
        first = time.perf_counter() - start

    def one_forward():
        with torch.no_grad():
            _call(model, inputs)

    timed = interleaved(
        {
            "forward": one_forward,
            "plain": lambda: plain_replication(model, inputs, samples),
            "steady": lambda: mc.predict(inputs, samples=samples, seed=0),
        },
        repeats,
    )
    forward, plain, steady = timed["forward"], timed["plain"], timed["steady"]
    route = next(line for line in mc.describe().splitlines() if line.startswith("sampling:"))
    return {
        "model": name,
        "samples": samples,
        "forward_ms": forward * 1e3,
        "naive_x": naive / forward,
        "plain_x": plain / forward,
        "first_x": first / forward,
        "steady_x": steady / forward,
        "steady_vs_plain": steady / plain,
        "route": route.removeprefix("sampling: "),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, bd.BayesdropWarning)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 15
    rows = []
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'model':<36} {'T':>4} {'fwd ms':>8} {'naive':>7} {'plain':>7} {'first':>7} {'steady':>7} {'vs plain':>9}")
    for name, model, inputs, options in build_models():
        for samples in (16, 100):
            row = measure(name, model, inputs, options, samples, repeats if samples <= 16 else max(3, repeats // 2))
            rows.append(row)
            print(
                f"{name:<36} {samples:>4} {row['forward_ms']:>8.2f} {row['naive_x']:>6.1f}x {row['plain_x']:>6.1f}x "
                f"{row['first_x']:>6.1f}x {row['steady_x']:>6.1f}x {row['steady_vs_plain']:>8.2f}x",
                flush=True,
            )
    model, inputs = bert_last_layer_case()
    case = measure("BERT 4x256, 16x64 tokens, last_layer", model, inputs, {"last_layer": True}, 32, repeats)
    rows.append(case)
    print(
        f"{case['model']:<36} {32:>4} {case['forward_ms']:>8.2f} {case['naive_x']:>6.1f}x {case['plain_x']:>6.1f}x "
        f"{case['first_x']:>6.1f}x {case['steady_x']:>6.1f}x {case['steady_vs_plain']:>8.2f}x  (target <= 1.5x)"
    )
    for row in rows:
        print(f"  {row['model']}, T={row['samples']}: {row['route']}")
    if args.out:
        from bayesdrop._io import atomic_open

        with atomic_open(args.out) as handle:
            json.dump(
                {
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "rows": rows,
                },
                handle,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
