"""The models people bring: Hugging Face transformers and timm, built from small configs (no
weights are downloaded)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import bayesdrop as bd
from _models import force_full_replication

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def bert(hidden=0.1, attention=0.1, layers=2, width=64, **extra):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=200,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * width,
        max_position_embeddings=64,
        num_labels=3,
        hidden_dropout_prob=hidden,
        attention_probs_dropout_prob=attention,
        **extra,
    )
    return transformers.BertForSequenceClassification(config).eval()


def gpt2(resid=0.1, attention=0.1, embedding=0.1):
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=200,
        n_positions=32,
        n_embd=64,
        n_layer=2,
        n_head=2,
        resid_pdrop=resid,
        embd_pdrop=embedding,
        attn_pdrop=attention,
        num_labels=3,
        pad_token_id=0,
    )
    return transformers.GPT2ForSequenceClassification(config).eval()


def tokens(batch=4, length=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 200, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0  # some padding
    return transformers.BatchEncoding({"input_ids": ids, "attention_mask": mask})


def vit(**drops):
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=5, depth=2, **drops
    ).eval()


def _logits(out):
    return out.logits if hasattr(out, "logits") else out


def own_spread(model, inputs, samples: int) -> torch.Tensor:
    model.train()
    for m in model.modules():
        if isinstance(m, NORMS):
            m.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        probs = []
        for _ in range(samples):
            out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
            probs.append(torch.softmax(_logits(out), -1))
    model.eval()
    return torch.stack(probs).std(0).mean(-1)


CASES = {
    "BERT attention dropout only": (lambda: bert(hidden=0.0, attention=0.1), tokens),
    "GPT-2 attention dropout only": (lambda: gpt2(resid=0.0, embedding=0.0, attention=0.1), tokens),
    "timm ViT attn_drop_rate only": (lambda: vit(attn_drop_rate=0.1), lambda: torch.randn(4, 3, 32, 32)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_attention_dropout_written_for_training_is_sampled_at_its_training_rate(case):
    make, make_inputs = CASES[case]
    model, inputs = make(), make_inputs()
    mc = bd.wrap(model)
    pred = mc.predict(inputs, samples=400, seed=0, keep_samples=True)
    active = mc.active_sites
    assert active and all(s.kind.value == "attention" and s.p == pytest.approx(0.1) for s in active)
    assert all(s.p == pytest.approx(0.1) for s in mc.sites if s.kind.value == "attention")  # was p=0 off
    ours = pred.samples.std(1).mean(-1)  # (B,): per-row std of the sampled probabilities
    theirs = own_spread(model, dict(inputs) if not isinstance(inputs, torch.Tensor) else inputs, 400)
    assert float(ours.min()) > 0
    # The same stochasticity as the model's own training mode, within sampling error (400 samples:
    # the std of a std estimate is ~3.5%).
    ratio = ours / theirs
    assert float(ratio.min()) > 0.8 and float(ratio.max()) < 1.25, ratio
    assert not any(m.training for m in model.modules())


def test_mode_eval_keeps_the_old_behaviour_and_says_why_nothing_is_stochastic():
    with pytest.raises(bd.BayesdropError, match="mode='eval'"):
        bd.wrap(bert(hidden=0.0, attention=0.1), mode="eval").predict(tokens(), samples=2)


def test_batchnorm_buffers_untouched_and_flags_restored():
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=4, drop_rate=0.2).eval()
    with torch.no_grad():  # give the statistics non-default values
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    pred = bd.wrap(model).predict(x, samples=8, seed=0)
    assert float(pred.epistemic.min()) > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m.training for m in model.modules())


def test_dict_inputs_model_outputs_and_loaders_of_dicts():
    model = bert()
    batch = tokens(batch=6)
    mc = bd.wrap(model)
    pred = mc.predict(batch, samples=20, seed=0)  # a tokenizer's BatchEncoding; the ModelOutput's logits
    assert pred.mean.shape == (6, 3) and pred.n_samples == 20
    torch.testing.assert_close(pred.mean.sum(-1), torch.ones(6))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    # a loader yielding dicts with labels, as Hugging Face collators do
    loader = [
        {**{k: v[:4] for k, v in batch.items()}, "labels": labels[:4]},
        {**{k: v[4:] for k, v in batch.items()}, "labels": labels[4:]},
    ]
    by_loader = mc.predict_loader(loader, samples=20, seed=0)
    assert by_loader.mean.shape == (6, 3) and by_loader.log_likelihood.shape == (6,)
    # the targets were taken from the dicts (not passed to the model): log p(label) of each row
    expected = by_loader.log_mean.gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(by_loader.log_likelihood, expected)


def test_ambiguous_outputs_name_the_choice_and_select_picks_it():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=200, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    model = transformers.BertForQuestionAnswering(config).eval()  # start_logits and end_logits
    batch = tokens()
    with pytest.raises(bd.BayesdropError, match="start_logits.*select"):
        bd.wrap(model).predict(batch, samples=2)
    pred = bd.wrap(model, select="start_logits").predict(batch, samples=10, seed=0)
    assert pred.mean.shape == (4, 12)

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.drop = nn.Linear(3, 2), nn.Linear(3, 5), nn.Dropout(0.2)

        def forward(self, x):
            x = self.drop(x)
            return self.a(x), self.b(x)

    with pytest.raises(bd.BayesdropError, match="select=0"):
        bd.wrap(Pair().eval()).predict(torch.randn(4, 3), samples=2)
    assert bd.wrap(Pair().eval(), select=1).predict(torch.randn(4, 3), samples=2).mean.shape == (4, 5)
    assert bd.wrap(Pair().eval(), select=lambda out: out[0]).predict(torch.randn(4, 3), samples=2).mean.shape == (4, 2)
    with pytest.raises(bd.BayesdropError, match="`select`"):
        bd.wrap(Pair().eval(), select=7).predict(torch.randn(4, 3), samples=2)


def test_bert_last_layer_caches_the_encoder_and_equals_full_replication():
    model = bert(layers=2)
    batch = tokens(batch=5)
    mc = bd.wrap(model, last_layer=True)
    got = mc.predict(batch, samples=12, seed=4, keep_samples=True, chunk_size=5)
    assert [s.where for s in mc.active_sites] == ["dropout"]  # the classifier's dropout only
    assert "module boundaries (bert run once per input" in mc.describe()
    # the encoder's hidden states are not read by the classifier: only the pooled output is copied
    assert mc._runtime.route.used == {("bert", 0): (False, True)}
    full = bd.wrap(model, last_layer=True)
    full.predict(batch, samples=1)
    force_full_replication(full)
    reference = full.predict(batch, samples=12, seed=4, keep_samples=True)
    torch.testing.assert_close(got.samples, reference.samples, rtol=1e-5, atol=1e-6)
    assert float(got.epistemic.min()) > 0


@pytest.mark.parametrize("make", [bert, gpt2], ids=["bert", "gpt2"])
def test_every_dropout_of_a_transformer_sampled_like_full_replication(make):
    """Module-boundary caching and modes scoped to the stochastic modules change no number."""
    model = make()
    batch = tokens(batch=3)
    mc = bd.wrap(model)
    got = mc.predict(batch, samples=10, seed=2, keep_samples=True, chunk_size=3)
    assert mc._runtime.route.scopes is not None
    full = bd.wrap(model)
    full.predict(batch, samples=1)
    force_full_replication(full)
    reference = full.predict(batch, samples=10, seed=2, keep_samples=True)
    torch.testing.assert_close(got.samples, reference.samples, rtol=1e-5, atol=1e-6)


def test_timm_convnets_split_by_fx_and_copies_keep_sampling():
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=4, drop_rate=0.2).eval()
    x = torch.randn(2, 3, 32, 32)
    mc = bd.wrap(model)
    pred = mc.predict(x, samples=16, seed=0, keep_samples=True)
    assert "prefix cached:" in mc.describe()
    twin = copy.deepcopy(mc)
    torch.testing.assert_close(twin.predict(x, samples=16, seed=0, keep_samples=True).samples, pred.samples)
