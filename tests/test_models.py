"""bayesdrop.models: shapes, fx-traceability, dropout placement, parameter counts, registry."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch import nn

from bayesdrop import BayesdropError, models
from bayesdrop.models import (
    MLP,
    VGG,
    ConvNet,
    DenseNet,
    LeNet5,
    RegressionMLP,
    ResNet18,
    create_model,
    list_models,
)

IMAGE_MODELS = ["lenet5", "gal_cnn", "convnet", "mlp", "resnet18", "densenet", "vgg"]
# Small widths keep the heavy networks fast; the layout (and placement logic) is unchanged.
SMALL = {"resnet18": {"width": 8}, "densenet": {"growth": 4, "block_config": (2, 2, 2)},
         "vgg": {"width": 8, "hidden": 32}, "convnet": {"width": 8}}  # fmt: skip


def executed_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules in the order the fx graph calls them."""
    graph = torch.fx.symbolic_trace(model)
    named = dict(graph.named_modules())
    return [(n.target, named[n.target]) for n in graph.graph.nodes if n.op == "call_module"]


def dropout_context(model: nn.Module) -> list[tuple[str, str]]:
    """For each executed Dropout: (type of the module before it, type of the module after)."""
    mods = [m for _, m in executed_modules(model) if not isinstance(m, nn.Identity)]
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Dropout):
            before = type(mods[i - 1]).__name__ if i > 0 else "input"
            after = type(mods[i + 1]).__name__ if i + 1 < len(mods) else "output"
            out.append((before, after))
    return out


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("size", [28, 32])
def test_output_shape_and_fx_trace(name, size):
    channels = 3 if size == 32 else 1
    model = create_model(name, in_channels=channels, num_classes=7, input_size=size,
                         **SMALL.get(name, {})).eval()  # fmt: skip
    x = torch.rand(2, channels, size, size)
    out = model(x)
    assert out.shape == (2, 7)
    traced = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(traced(x), out)


@pytest.mark.parametrize("name", ["resnet18", "densenet", "vgg"])
def test_full_size_networks_run(name):
    model = create_model(name, in_channels=3, input_size=32).eval()
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    torch.fx.symbolic_trace(model)


def test_regression_mlp_shapes_trace_and_variance():
    model = RegressionMLP(13, hidden=(50,), out_features=2, heteroscedastic=True).eval()
    x = torch.randn(4, 13)
    mean, var = model(x)
    assert mean.shape == var.shape == (4, 2)
    assert (var >= model.min_variance).all()
    traced = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(traced(x)[1], var)
    with torch.no_grad():  # a very negative raw variance still gives the floor, not 0 or NaN
        model.var_head.bias.fill_(-1e4)
        model.var_head.weight.zero_()
    assert torch.equal(model(x)[1], torch.full((4, 2), 1e-6))
    point = RegressionMLP(13).eval()
    assert point(x).shape == (4, 1)


def test_uci_net_layout():
    model = create_model("regression_mlp", in_features=13, hidden=(50,), dropout=0.05,
                         placement="both")  # fmt: skip
    kinds = [type(m).__name__ for _, m in executed_modules(model)]
    assert kinds == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    linears = [m for _, m in executed_modules(model) if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(13, 50), (50, 1)]
    assert all(m.p == 0.05 for m in model.modules() if isinstance(m, nn.Dropout))


# (model, placement) -> expected (module before, module after) of every dropout, in order.
PLACEMENTS = [
    ("lenet5", "fc", [("ReLU", "Linear"), ("ReLU", "Linear")]),
    ("lenet5", "last", [("ReLU", "Linear")]),
    ("lenet5", "conv", [("MaxPool2d", "Conv2d"), ("MaxPool2d", "Linear")]),
    ("lenet5", "all", [("MaxPool2d", "Conv2d"), ("MaxPool2d", "Linear"), ("ReLU", "Linear"),
                       ("ReLU", "Linear")]),
    ("lenet5", ["conv", "last"], [("MaxPool2d", "Conv2d"), ("MaxPool2d", "Linear"),
                                  ("ReLU", "Linear")]),
    ("lenet5", "none", []),
    ("convnet", "fc", [("ReLU", "Linear")]),
    ("convnet", "conv", [("MaxPool2d", "Conv2d"), ("MaxPool2d", "Linear")]),
    ("mlp", "hidden", [("ReLU", "Linear"), ("ReLU", "Linear")]),
    ("mlp", "input", [("input", "Linear")]),
    ("mlp", "both", [("input", "Linear"), ("ReLU", "Linear"), ("ReLU", "Linear")]),
    ("resnet18", "last", [("AdaptiveAvgPool2d", "Linear")]),
    ("resnet18", "none", []),
    ("densenet", "last", [("AdaptiveAvgPool2d", "Linear")]),
    ("vgg", "fc", [("ReLU", "Linear"), ("ReLU", "Linear")]),
    ("vgg", "last", [("ReLU", "Linear")]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "placement", "expected"), PLACEMENTS)
def test_dropout_placement(name, placement, expected):
    model = create_model(name, dropout=0.3, placement=placement, **SMALL.get(name, {}))
    assert dropout_context(model) == expected
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))


@pytest.mark.parametrize(("name", "per_stage"), [("resnet18", 4), ("densenet", 6), ("vgg", 4)])
def test_dropout_in_blocks(name, per_stage):
    """ResNet: one per stage; DenseNet: one per dense layer; VGG at 28x28: one per pool (4)."""
    placement = "conv" if name == "vgg" else "blocks"
    model = create_model(name, placement=placement, **SMALL.get(name, {}))
    n = sum(isinstance(m, nn.Dropout) for m in model.modules())
    assert n == per_stage
    # none of them feeds the classifier directly
    assert dropout_context(model)[-1][1] != "Linear"


@pytest.mark.parametrize("name", [m for m in IMAGE_MODELS if m != "gal_cnn"])  # its placement is the paper's
def test_placement_none_is_deterministic_in_train_mode(name):
    x = torch.rand(4, 1, 28, 28)
    model = create_model(name, placement="none", dropout=0.5, **SMALL.get(name, {})).train()
    assert torch.equal(model(x), model(x))
    stochastic = create_model(name, dropout=0.5, **SMALL.get(name, {})).train()
    assert not torch.equal(stochastic(x), stochastic(x))


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _linear(fin: int, fout: int) -> int:
    return fin * fout + fout


def test_parameter_counts_against_formulas():
    lenet = _conv(1, 6, 5) + _conv(6, 16, 5) + _linear(400, 120) + _linear(120, 84)
    lenet += _linear(84, 10)
    for size in (28, 32):
        assert sum(p.numel() for p in LeNet5(input_size=size).parameters()) == lenet

    def resnet(cin: int, w: int, classes: int) -> int:
        total = _conv(cin, w, 3, False) + 2 * w
        planes_in = w
        for i in range(4):
            planes = w * 2**i
            for j in range(2):
                first_in = planes_in if j == 0 else planes
                total += _conv(first_in, planes, 3, False) + _conv(planes, planes, 3, False)
                total += 4 * planes  # two BatchNorms
                if j == 0 and (i > 0 or planes_in != planes):
                    total += _conv(first_in, planes, 1, False) + 2 * planes
            planes_in = planes
        return total + _linear(8 * w, classes)

    assert sum(p.numel() for p in ResNet18(3, 10).parameters()) == resnet(3, 64, 10)
    assert resnet(3, 64, 10) == 11_173_962  # the widely quoted CIFAR ResNet-18 size

    mlp = _linear(784, 512) + _linear(512, 512) + _linear(512, 10)
    assert sum(p.numel() for p in MLP().parameters()) == mlp

    vgg11 = VGG(3, 10, 32)
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512),
             (512, 512)]  # fmt: skip
    expected = sum(_conv(a, b, 3) + 2 * b for a, b in convs)
    expected += _linear(512, 512) + _linear(512, 512) + _linear(512, 10)
    assert sum(p.numel() for p in vgg11.parameters()) == expected

    n_dense = sum(p.numel() for p in DenseNet().parameters())
    assert 100_000 < n_dense < 1_000_000  # a *small* DenseNet
    conv = ConvNet()
    assert sum(p.numel() for p in conv.parameters()) == (
        _conv(1, 32, 3) + _conv(32, 32, 3) + _conv(32, 64, 3) + _conv(64, 64, 3)
        + _linear(64 * 7 * 7, 128) + _linear(128, 10)
    )  # fmt: skip


def test_models_train_one_step():
    model = create_model("lenet5")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = model.classifier[-1].weight.clone()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert not torch.equal(before, model.classifier[-1].weight)


def test_registry_lists_and_errors():
    described = list_models()
    assert set(IMAGE_MODELS) | {"regression_mlp"} == set(described)
    assert all(isinstance(d, str) and d for d in described.values())
    assert isinstance(create_model("Regression-MLP"), RegressionMLP)
    with pytest.raises(BayesdropError, match="`name`.*lenet5.*vgg"):
        create_model("alexnet")
    with pytest.raises(BayesdropError, match=r"unknown argument\(s\) \['depth'\]"):
        create_model("lenet5", depth=3)
    with pytest.raises(BayesdropError, match="`dropout`.*\\[0, 1\\)"):
        create_model("lenet5", dropout=1.0)
    with pytest.raises(BayesdropError, match="`placement`.*'conv'"):
        create_model("lenet5", placement="everywhere")
    with pytest.raises(BayesdropError, match="`placement`"):
        create_model("mlp", placement="fc")
    with pytest.raises(BayesdropError, match="`input_size`"):
        create_model("resnet18", input_size=64)
    with pytest.raises(BayesdropError, match="`hidden`"):
        create_model("mlp", hidden=(10, -1))
    with pytest.raises(BayesdropError, match="`activation`"):
        create_model("regression_mlp", activation="swish")
    with pytest.raises(BayesdropError, match="`depth`"):
        create_model("vgg", depth=19)


def test_standardized_sees_standard_inputs_and_answers_in_target_units():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g) * torch.tensor([10.0, 0.1, 1.0]) + torch.tensor([5.0, -2.0, 0.0])
    x[:, 2] = 7.0  # a constant column gets scale 1, not a division by zero
    y = 40.0 + 6.0 * torch.randn(200, 1, generator=g)
    seen: list[torch.Tensor] = []
    net = nn.Linear(3, 1)
    net.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    model = models.Standardized(net, x, y)
    out = model(x)
    inside = seen[0]
    torch.testing.assert_close(inside[:, :2].mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(inside[:, :2].std(0), torch.ones(2))
    torch.testing.assert_close(inside[:, 2], torch.zeros(200))
    torch.testing.assert_close(out, net(inside) * y.std() + y.mean())
    hetero = models.Standardized(models.RegressionMLP(3, hidden=(8,), heteroscedastic=True).eval(), x, y)
    mean, var = hetero(x)
    raw_mean, raw_var = hetero.net(inside)
    torch.testing.assert_close(var, raw_var * y.std() ** 2)
    torch.testing.assert_close(mean, raw_mean * y.std() + y.mean())
    assert {"x_shift", "x_scale", "y_shift", "y_scale"} <= set(model.state_dict())
    torch.fx.symbolic_trace(hetero)  # the engine can split it
    with pytest.raises(BayesdropError, match="`y`"):
        models.Standardized(net, x, y[:10])


def test_gal_cnn_has_the_papers_layout_and_two_dropout_sites():
    model = create_model("gal_cnn").eval()
    # conv 1->32 (4x4), conv 32->32 (4x4), dense 3872->128, dense 128->10
    expected = (16 * 32 + 32) + (16 * 32 * 32 + 32) + (3872 * 128 + 128) + (128 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert dropout_context(model) == [("MaxPool2d", "Flatten"), ("ReLU", "Linear")]
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.25, 0.5]
